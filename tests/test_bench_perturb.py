"""The perturbation run: which significant verdicts survive the same protocol on shifted seeds."""
from __future__ import annotations

import copy

from bench_results import derived_results

from zoo.bench.config import tuning_seeds
from zoo.bench.loading import load_bench_config
from zoo.bench.perturb import perturbation_record, shifted, survival, verdicts
from zoo.bench.report.files import markdown
from zoo.bench.report.findings import perturbation_lines
from zoo.bench.results import derive
from zoo.cli import main


def test_shifted_seeds_move_the_reported_and_the_tuning_seeds():
    from bench_results import SMOKE

    config = load_bench_config(SMOKE, ["seeds=[0, 1]", "perturbation.seed_offset=50"])
    moved = shifted(config)
    assert moved.seeds == [50, 51] and tuning_seeds(moved) == [1051]
    assert config.seeds == [0, 1]  # the config itself is untouched


def test_verdicts_that_change_on_shifted_seeds_are_marked():
    """This run (tests/bench_results.py): DPO is significantly above SFT (Holm p = 0.015), SFT is below
    best and the claim DPO > SFT is reproduced. On the "shifted seeds" DPO's gold is lowered to the
    SFT model's on two of three seeds, so DPO is no longer significantly above SFT, nor the claim."""
    results = derived_results()
    assert verdicts(results)["DPO vs SFT"] == "above"
    same = perturbation_record(derived_results())
    assert all(survival({**results, "perturbation": same}).values())
    stored = derived_results()
    for seed in ("0", "1"):
        stored["contenders"][1]["seeds"][seed]["gold_per_prompt"] = list(
            stored["contenders"][0]["seeds"][seed]["gold_per_prompt"])
    perturbed = derive(copy.deepcopy(stored))
    record = perturbation_record(perturbed)
    assert record["verdicts"]["DPO vs SFT"] == "n.s."
    marked = {**results, "perturbation": record}
    survives = survival(marked)
    assert survives["DPO vs SFT"] is False and survives["claim: DPO improves on the SFT model"] is False
    assert "PPO (proxy RM) vs SFT" not in survives  # not significant here: nothing to survive
    text = markdown(marked)
    assert "| DPO vs SFT | above | n.s. | NO |" in text
    assert "| DPO improves on the SFT model | DPO > SFT | reproduced (+1.17, Holm-adjusted p = 0.005) | NO |" in text
    assert perturbation_lines(results) == []  # no perturbation run, no section


def test_perturb_needs_the_main_result_first(tmp_path, capsys):
    from bench_results import SMOKE

    assert main(["bench", str(SMOKE), "--perturb", "--output", str(tmp_path / "none")]) == 2
    assert "--perturb marks the verdicts of the result in" in capsys.readouterr().err
