#!/usr/bin/env bash
# bash benchmarks/regenerate_results.sh
# Regenerates every committed benchmark result from the current code, then checks them.
# Run it from a clean tree (commit first): results.json records the commit and whether the
# tree was clean, and `zoo bench --check` accepts only results written from a clean tree.
# Stages are cached in runs/bench/cache by a hash of their inputs and of the source that builds
# them, so after a change only what the change can affect is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "$(git status --porcelain -- zoo plugins configs/bench)" ]; then
    echo "uncommitted changes under zoo/, plugins/ or configs/bench/: commit them first" >&2
    git status --short -- zoo plugins configs/bench >&2
    exit 1
fi
zoo bench configs/bench/tiny.yaml --output benchmarks/results/tiny
# The same protocol on shifted seeds (into benchmarks/results/tiny/perturbed): results.md marks
# which of the headline's significant verdicts survive it.
zoo bench configs/bench/tiny.yaml --output benchmarks/results/tiny --perturb
zoo bench configs/bench/frontier.yaml --output benchmarks/results/frontier
# The real-model track (SmolLM2-135M-Instruct, about an hour cold on 2 CPU cores), offline data:
# threads=1: the committed run shared the 2 cores with the fables runs, one each.
zoo bench configs/bench/smollm2.yaml task.args.data=../shared/data/hh-rlhf/harmless-base-test.jsonl.gz \
    evaluation.data_dir=../shared/data threads=1 --output benchmarks/results/smollm2
# Controlled sentiment on real text (SmolLM2, VADER as the gold reward), HellaSwag's contexts as the
# local text, the three declared seeds (about 45 min cold each on 2 CPU cores). After a change that
# should move no number, add `canary.until=reward_model --canary` to carry its cache over instead
# (that is how the committed result reached today's code).
zoo bench configs/bench/sentiment.yaml task.args.data=../shared/data/hellaswag/hellaswag_val_1000.jsonl \
    task.args.field=ctx evaluation.data_dir=../shared/data --output benchmarks/results/sentiment
zoo bench --check benchmarks/results/
