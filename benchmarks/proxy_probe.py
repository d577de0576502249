"""How much of the sentiment task's gold preference the frozen policy's features carry, from a bench run's samples.

    python benchmarks/proxy_probe.py runs/bench/sentiment-cache/preferences-<fingerprint>

The sentiment track's proxy reward model ranks held-out gold-labelled pairs at chance (0.43–0.51)
although it is trained on 256 labelled pairs. This asks whether a better-trained head could do
better on the same data: it reads SmolLM2's hidden states (layers ``--layers``, the response
tokens' mean and the last token) for every sample of a ``preferences-*`` stage folder, fits
L2-regularised Bradley–Terry read-outs (logistic regression on feature differences, scikit-learn)
and scores each on the folder's held-out pairs (``heldout_pairs.jsonl``: test prompts, chosen by
VADER without noise). Training sets, from ``ranked.jsonl`` (4 samples a prompt) re-scored with the
task's own gold reward (``vader_compound``):

* ``noisy pairs``: the stage's own labels (``pairs.jsonl``: one Plackett–Luce-drawn pair a prompt);
* ``gold, all pairs``: the 6 pairs of every prompt's 4 samples, labelled by VADER without noise
  (ties dropped): the most a pairwise learner could get from these samples;
* ``gold, regression``: ridge regression on the VADER scores themselves, ranked by its prediction.

Each is fitted on the first 64, 128 and all train prompts. Needs scikit-learn (not a dependency of
alignment-zoo: ``pip install scikit-learn``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

STRENGTHS = (1e-3, 1e-2, 1e-1)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def features(model, tokenizer, prompt: str, response: str, layers: list[int]) -> dict[str, torch.Tensor]:
    """Mean over the response tokens and last token of each layer's hidden state."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = prompt_ids + tokenizer(response, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    out = {}
    for layer in layers:
        hidden = states[layer][0]
        out[f"mean{layer}"] = hidden[len(prompt_ids):].mean(0)
        out[f"last{layer}"] = hidden[-1]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preferences", type=Path, help="a preferences-<fingerprint> folder of a sentiment bench cache")
    parser.add_argument("--model-dir", default="smollm2", help="the policy the samples came from (default smollm2)")
    parser.add_argument("--layers", default="10,20,30")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression, Ridge
    except ImportError:
        raise SystemExit("proxy_probe.py needs scikit-learn: pip install scikit-learn") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo_benchmarks.model_source import model_directory
    from zoo_plugins.tasks.sentiment import vader_compound
    from zoo.progress import Progress

    torch.set_num_threads(args.threads)
    folder = args.preferences
    missing = [name for name in ("pairs.jsonl", "ranked.jsonl", "heldout_pairs.jsonl") if not (folder / name).exists()]
    if missing:
        raise SystemExit(f"{folder}: no {', '.join(missing)} (expected a preferences-* stage folder)")
    pairs, ranked, heldout = (read_jsonl(folder / name) for name in ("pairs.jsonl", "ranked.jsonl",
                                                                     "heldout_pairs.jsonl"))
    layers = [int(x) for x in args.layers.split(",")]
    directory = model_directory(args.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()

    texts = {(r["prompt"], x) for r in ranked for x in r["responses"]}
    texts |= {(r["prompt"], r[k]) for rows in (pairs, heldout) for r in rows for k in ("chosen", "rejected")}
    table = {}
    with Progress("features", len(texts), "samples") as progress:
        for prompt, response in sorted(texts):
            table[prompt, response] = features(model, tokenizer, prompt, response, layers)
            progress.advance(1)
    gold = [vader_compound([r["prompt"]] * len(r["responses"]), r["responses"]) for r in ranked]
    keys = list(next(iter(table.values())))
    print(f"{len(ranked)} train prompts × {len(ranked[0]['responses'])} samples, {len(pairs)} noisy pairs, "
          f"{len(heldout)} held-out gold pairs; held-out accuracy of each read-out at L2 strengths "
          f"C = {', '.join(map(str, STRENGTHS))}:")

    def vec(prompt: str, response: str, key: str):
        return table[prompt, response][key].numpy()

    def accuracy(score_difference) -> float:
        return float(np.mean([score_difference(r) > 0 for r in heldout]))

    for key in keys:
        for prompts in (64, 128, len(ranked)):
            rows = []
            pair_rows = [p for p in pairs if p["prompt"] in {r["prompt"] for r in ranked[:prompts]}]
            rows.append(("noisy pairs", [(vec(p["prompt"], p["chosen"], key) - vec(p["prompt"], p["rejected"], key))
                                         for p in pair_rows]))
            gold_rows = []
            for r, scores in zip(ranked[:prompts], gold):
                for a, b in itertools.combinations(range(len(r["responses"])), 2):
                    if scores[a] != scores[b]:
                        better, worse = (a, b) if scores[a] > scores[b] else (b, a)
                        gold_rows.append(vec(r["prompt"], r["responses"][better], key)
                                         - vec(r["prompt"], r["responses"][worse], key))
            rows.append(("gold, all pairs", gold_rows))
            cells = []
            for label, differences in rows:
                x = np.stack(differences)
                x, y = np.concatenate([x, -x]), np.r_[np.ones(len(differences)), np.zeros(len(differences))]
                scores = []
                for strength in STRENGTHS:
                    fit = LogisticRegression(C=strength, max_iter=3000, fit_intercept=False).fit(x, y)
                    scores.append(accuracy(lambda p: fit.decision_function(
                        (vec(p["prompt"], p["chosen"], key) - vec(p["prompt"], p["rejected"], key))[None])[0]))
                cells.append(f"{label} ({len(differences)}): {' '.join(f'{s:.2f}' for s in scores)}")
            x = np.stack([vec(r["prompt"], response, key) for r in ranked[:prompts] for response in r["responses"]])
            y = np.concatenate(gold[:prompts])
            regression = []
            for strength in STRENGTHS:
                fit = Ridge(alpha=1 / strength).fit(x, y)
                regression.append(accuracy(lambda p: float(fit.coef_ @ (vec(p["prompt"], p["chosen"], key)
                                                                         - vec(p["prompt"], p["rejected"], key)))))
            cells.append(f"gold, regression ({len(y)}): {' '.join(f'{s:.2f}' for s in regression)}")
            print(f"{key:7s} {prompts:4d} prompts | " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
