"""Every number of results.md recomputes from results.json (tests/bench_recompute.py: numpy and scipy
only, no ``zoo.bench.stats``): on a hand-made result, and on every committed result under
benchmarks/results (one in an older results format is skipped, named: ``zoo bench`` regenerates it).
The smoke run's fresh result is checked the same way in tests/test_bench_smoke.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_recompute import assert_recomputes

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "benchmarks" / "results").rglob("results.json"))


def test_a_hand_made_result_recomputes():
    from bench_results import derived_results

    from zoo.bench.report.files import markdown

    claims = [{"text": "DPO improves on the SFT model", "better": "DPO", "worse": "SFT"},
              {"text": "PPO collapses more than DPO", "better": "DPO", "worse": "PPO (proxy RM)",
               "outcome": "collapse"}]
    results = derived_results(claims=claims)
    assert_recomputes(json.loads(json.dumps(results)), markdown(results))


def test_the_recomputation_notices_a_wrong_number():
    from bench_results import derived_results

    from zoo.bench.report.files import markdown

    results = derived_results()
    text = markdown(results)
    stored = json.loads(json.dumps(results))
    stored["contenders"][1]["seeds"]["2"]["gold_per_prompt"][0] += 1.0
    with pytest.raises(AssertionError):
        assert_recomputes(stored, text)


@pytest.mark.parametrize("path", COMMITTED, ids=[str(p.parent.relative_to(ROOT)) for p in COMMITTED])
def test_every_committed_result_recomputes(path):
    results = json.loads(path.read_text(encoding="utf-8"))
    if results.get("format") != 2:
        pytest.skip(f"{path.parent.relative_to(ROOT)} is in an older results format (regenerated with zoo bench)")
    assert_recomputes(results, (path.parent / "results.md").read_text(encoding="utf-8"))
