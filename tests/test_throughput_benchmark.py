"""benchmarks/throughput.py: its arithmetic on hand-worked numbers, and one short run of the script."""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "throughput.py"
HH_TEST = "hh-rlhf/harmless-base-test.jsonl.gz"
TINY = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
TINY_ARG = ",".join(f"{key}={value}" for key, value in TINY.items())


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get("throughput")
    sys.modules["throughput"] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        if previous is None:
            sys.modules.pop("throughput", None)
        else:
            sys.modules["throughput"] = previous


def meter(throughput, times, tokens, squares=None, peak_flops=0.0):
    result = throughput.StepMeter()
    result.times, result.tokens = list(times), list(tokens)
    result.squares = list(squares if squares is not None else [0] * len(tokens))
    result.peak_flops = peak_flops
    return result


# ----- StepMeter -------------------------------------------------------------------------------------


def test_tokens_per_second_is_the_median_window_after_warmup(throughput):
    # 11 steps, warmup 1, 3 windows: size = (11 - 1) // 3 = 3, so the windows are steps 1-3, 4-6 and
    # 7-9, each timed from the end of the step before it; step 10 (a huge outlier) is left over.
    #   window 0: (100 + 200 + 300) tokens / (13 - 10) s = 600 / 3 = 200 tokens/s
    #   window 1: (100 + 100 + 100) tokens / (19 - 13) s = 300 / 6 =  50 tokens/s  (step 6 was slow)
    #   window 2: ( 60 +  60 +  60) tokens / (22 - 19) s = 180 / 3 =  60 tokens/s
    # median(200, 50, 60) = 60. The warmup step's 5,000 tokens count nowhere.
    steps = meter(throughput, times=[10, 11, 12, 13, 14, 15, 19, 20, 21, 22, 23],
                  tokens=[5000, 100, 200, 300, 100, 100, 100, 60, 60, 60, 10**6])
    median, rates = steps.tokens_per_second(warmup=1, windows=3)
    assert rates == pytest.approx([200.0, 50.0, 60.0])
    assert median == pytest.approx(60.0)


def test_tokens_per_second_with_one_step_per_window(throughput):
    # 4 steps, warmup 2, 2 windows: size 1; window 0 = step 2: 30 / (3.5 - 1.0) = 12;
    # window 1 = step 3: 40 / (4.5 - 3.5) = 40; median of two = their mean, 26.
    steps = meter(throughput, times=[0.5, 1.0, 3.5, 4.5], tokens=[1, 2, 30, 40])
    median, rates = steps.tokens_per_second(warmup=2, windows=2)
    assert rates == pytest.approx([12.0, 40.0])
    assert median == pytest.approx(26.0)


def test_tokens_per_second_refuses_too_few_steps(throughput):
    steps = meter(throughput, times=[1, 2, 3, 4], tokens=[10] * 4)
    with pytest.raises(SystemExit, match="only 4 steps ran"):
        steps.tokens_per_second(warmup=2, windows=3)  # 4 - 2 = 2 timed steps for 3 windows


def test_tokens_per_second_needs_a_warmup_step(throughput):
    # Without a step before the first timed one there is no start time to measure it from.
    steps = meter(throughput, times=[1, 2, 3, 4, 5], tokens=[10] * 5)
    with pytest.raises(SystemExit, match="warmup"):
        steps.tokens_per_second(warmup=0, windows=2)


def test_step_done_counts_real_tokens_and_their_squares(throughput):
    steps = throughput.StepMeter()
    # Row lengths 3 (left-padded), 1 and 4: Σl = 8, Σl² = 9 + 1 + 16 = 26.
    steps.step_done(torch.tensor([[0, 0, 1, 1, 1],
                                  [1, 0, 0, 0, 0],
                                  [1, 1, 1, 1, 0]]))
    # Row lengths 2 and 2: Σl = 4, Σl² = 8.
    steps.step_done(torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=torch.long))
    # Row lengths 6 and 1: Σl = 7, Σl² = 37 (a boolean mask counts the same).
    steps.step_done(torch.tensor([[True] * 6, [True] + [False] * 5]))
    assert steps.tokens == [8, 4, 7]
    assert steps.squares == [26, 8, 37]
    assert all(isinstance(n, int) for n in steps.tokens + steps.squares)
    assert len(steps.times) == 3 and steps.times == sorted(steps.times)
    # Σl² / Σl over the steps after the warmup ones:
    assert steps.tokens_per_sequence_token(0) == pytest.approx((26 + 8 + 37) / (8 + 4 + 7))  # 71 / 19
    assert steps.tokens_per_sequence_token(1) == pytest.approx((8 + 37) / (4 + 7))  # 45 / 11
    assert steps.tokens_per_sequence_token(2) == pytest.approx(37 / 7)
    assert steps.tokens_per_sequence_token(3) == 0.0  # no steps: no division by zero


# ----- summarise --------------------------------------------------------------------------------------


def three_runs(throughput):
    """Three runs of 5 steps (warmup 1, 2 windows of 2 steps, one step a second), each with a
    different rate, peak and sequence length:

      run  tokens/step        rate   peak     rate/peak  Σl²/Σl after warmup
      A    2 × 50  = 100      100    1e7      1.0e-5      50
      B    3 × 100 = 300      300    2e7      1.5e-5     100
      C    2 × 240 = 480      480    1e6      4.8e-4     240

    The warmup step (one sequence of 7 tokens) counts in no figure but mean tokens per step.
    """
    times = [0, 1, 2, 3, 4]
    return [meter(throughput, times, [7] + [100] * 4, [49] + [2 * 50**2] * 4, peak_flops=1e7),
            meter(throughput, times, [7] + [300] * 4, [49] + [3 * 100**2] * 4, peak_flops=2e7),
            meter(throughput, times, [7] + [480] * 4, [49] + [2 * 240**2] * 4, peak_flops=1e6)]


@pytest.mark.parametrize("needs_reference,precompute", [(True, False), (True, True), (False, False)])
def test_summarise_mfu(throughput, needs_reference, precompute):
    args = argparse.Namespace(warmup=1, windows=2)
    params, attention_width = 1000, 10
    result = throughput.summarise("zoo", precompute, three_runs(throughput), args, params, attention_width,
                                  needs_reference)
    # tokens/s: median(100, 300, 480) = 300; every window of every run is listed.
    assert result.tokens_per_second == pytest.approx(300.0)
    assert result.windows == pytest.approx([100, 100, 300, 300, 480, 480])
    assert result.steps == 5
    # Mean tokens per step over every step of every run: (3 × 7 + 4 × (100 + 300 + 480)) / 15.
    assert result.mean_tokens_per_step == pytest.approx((21 + 3520) / 15)
    # Utilisation: each run's rate over its own peak, median over runs: median(1e-5, 1.5e-5, 4.8e-4) = 1.5e-5
    # (not median rate / median peak = 300 / 1e7 = 3e-5, nor the mean 1.7e-4).
    utilisation = 1.5e-5
    # Sequence length per token: the mean over runs of Σl²/Σl = (50 + 100 + 240) / 3 = 130.
    length = 130
    # mfu = 6 N · utilisation = 6000 × 1.5e-5 = 0.09
    assert result.mfu == pytest.approx(0.09)
    assert result.mfu == pytest.approx(6 * params * utilisation)
    # with attention: (6 N + 12 · L·d · length) · u = (6000 + 12 × 10 × 130) × 1.5e-5 = 21600 × 1.5e-5 = 0.324
    assert result.mfu_with_attention == pytest.approx(0.324)
    assert result.mfu_with_attention == pytest.approx((6 * params + 12 * attention_width * length) * utilisation)
    if needs_reference and not precompute:
        # reference forward pass every step: + 2 N → 8000 × 1.5e-5 = 0.12
        assert result.mfu_with_reference == pytest.approx(0.12)
        # and its attention: + 2 N + 4 · L·d · length → (21600 + 2000 + 5200) × 1.5e-5 = 28800 × 1.5e-5 = 0.432
        assert result.mfu_with_attention_and_reference == pytest.approx(0.432)
    else:
        # no reference pass during training (none needed, or precomputed): nothing added
        assert result.mfu_with_reference == pytest.approx(0.09)
        assert result.mfu_with_attention_and_reference == pytest.approx(0.324)


def test_summarise_of_a_single_run(throughput):
    args = argparse.Namespace(warmup=1, windows=2)
    run = three_runs(throughput)[1]  # 300 tokens/s against a peak of 2e7: u = 1.5e-5, length 100
    result = throughput.summarise("trl", False, [run], args, 2000, 5, True)
    assert (result.tool, result.precompute) == ("trl", False)
    assert result.tokens_per_second == pytest.approx(300.0)
    # 6 × 2000 × 1.5e-5 = 0.18; + 2 N: 16000 × 1.5e-5 = 0.24
    assert result.mfu == pytest.approx(0.18)
    assert result.mfu_with_reference == pytest.approx(0.24)
    # (12000 + 12 × 5 × 100) × 1.5e-5 = 18000 × 1.5e-5 = 0.27; + 4000 + 4 × 5 × 100: 24000 × 1.5e-5 = 0.36
    assert result.mfu_with_attention == pytest.approx(0.27)
    assert result.mfu_with_attention_and_reference == pytest.approx(0.36)


# ----- the model's figures ------------------------------------------------------------------------------


def test_matmul_parameters_of_the_tiny_model_leave_out_the_input_embedding(throughput):
    from zoo.tiny import tiny_model, tiny_tokenizer

    model = tiny_model(tiny_tokenizer(), **TINY)
    # vocab 260, hidden 32, intermediate 64, 2 layers, 2 query heads and 1 key/value head of size 16:
    #   attention: q 32·32 + k 32·16 + v 32·16 + o 32·32 = 3072; MLP: gate, up, down 3 × 32·64 = 6144;
    #   two RMSNorms 2 × 32 = 64  → 9280 per layer, 18560 for two; final norm 32; LM head 260·32 = 8320.
    # The input embedding table (260·32 = 8320) is a lookup.
    assert throughput.matmul_parameters(model) == 18560 + 32 + 8320 == 26912
    total = sum(p.numel() for p in model.parameters())
    assert total == 26912 + 260 * 32
    assert throughput.matmul_parameters(model) == total - model.model.embed_tokens.weight.numel()


def test_matmul_parameters_count_a_tied_table_once_as_the_lm_head(throughput):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=260, num_hidden_layers=2, tie_word_embeddings=True, **TINY))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    # The same layers as the untied tiny model; the one table is the LM head's matmul: 18560 + 32 + 8320.
    assert throughput.matmul_parameters(model) == 26912 == sum(p.numel() for p in model.parameters())


def test_tiny_geometry_parses_sizes(throughput):
    assert throughput.tiny_geometry("hidden_size=128,num_attention_heads=2") == {
        "hidden_size": 128, "num_attention_heads": 2}
    assert throughput.tiny_geometry(" intermediate_size = 352 ,num_hidden_layers=3,") == {
        "intermediate_size": 352, "num_hidden_layers": 3}
    assert throughput.tiny_geometry("") == {}


@pytest.mark.parametrize("text", ["vocab_size=100", "seed=1", "max_position_embeddings=64", "hidden_size=1.5",
                                  "hidden_size=abc", "hidden_size=-8", "hidden_size=", "hidden_size",
                                  "hidden_size=64,heads=2"])
def test_tiny_geometry_refuses_unknown_keys_and_non_integers(throughput, text):
    with pytest.raises(argparse.ArgumentTypeError):
        throughput.tiny_geometry(text)


def test_parse_args_wires_tiny_and_checks_the_step_counts(throughput, capsys):
    args = throughput.parse_args(["--tiny", TINY_ARG, "--steps", "6", "--warmup", "2", "--windows", "2"])
    assert args.tiny == TINY
    assert throughput.parse_args([]).tiny == {}
    for argv in (["--tiny", "seed=3"], ["--steps", "4", "--warmup", "2", "--windows", "2"],
                 ["--steps", "6", "--warmup", "0", "--windows", "2"]):
        with pytest.raises(SystemExit):
            throughput.parse_args(argv)
    capsys.readouterr()


# ----- peak memory ----------------------------------------------------------------------------------------


def test_peak_memory_counts_live_storages_once(throughput):
    outside = torch.empty(2_000_000)  # created before the block: not counted
    with throughput.peak_memory() as peak:
        a = torch.empty(1_000_000)  # 4,000,000 bytes of float32
        view = a.view(1000, 1000)  # a view shares the storage: not counted again
        view.zero_()  # in place: the op's output is the same storage
        del a, view  # freed: uncounted
        b = torch.empty(500_000)  # 2,000,000 bytes, after a is gone: the peak stays at 4,000,000
        del b
    assert peak["bytes"] == 4_000_000
    with throughput.peak_memory() as peak:
        a = torch.empty(1_000_000)
        b = torch.empty(500_000, dtype=torch.float64)  # 4,000,000 bytes, both live: 8,000,000
        del a, b
        c = torch.empty(100)
        del c
    assert peak["bytes"] == 8_000_000
    del outside


def test_peak_memory_sees_temporaries_of_operations(throughput):
    x = torch.ones(1_000_000)
    with throughput.peak_memory() as peak:
        total = (x * 2).sum()  # a temporary 4,000,000-byte product, then a 4-byte sum
    assert total.item() == 2_000_000
    # At least the temporary; under 2× it (nothing else of that size lives in the block).
    assert 4_000_000 <= peak["bytes"] < 8_000_000


# ----- the script, end to end ------------------------------------------------------------------------------


def hh_sample(shared_data: Path, directory: Path, rows: int = 40) -> Path:
    with gzip.open(shared_data / HH_TEST, "rt", encoding="utf-8") as source:
        lines = [line for _, line in zip(range(rows), source)]
    path = directory / "hh-sample.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def run_script(data: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--against", "none", "--tiny", TINY_ARG, "--data", str(data),
               "--max-examples", "32", "--batch-size", "4", "--max-length", "128", "--max-prompt-length", "64",
               "--steps", "6", "--warmup", "2", "--windows", "2", "--json", str(out), *options]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def check_run(run: dict, report: dict) -> None:
    """Relations that hold in any run: positive rates, MFU from the rate and a measured peak."""
    params = report["matmul_parameters"]
    assert run["steps"] == 6
    assert len(run["windows"]) == 2 and all(w > 0 for w in run["windows"])
    assert run["tokens_per_second"] == pytest.approx(statistics.median(run["windows"]))
    assert run["tokens_per_second"] > 0
    assert 0 < run["mfu"] <= run["mfu_with_attention"]
    assert run["mfu_with_reference"] <= run["mfu_with_attention_and_reference"]
    # The run's peak is at most the best one measured, so its MFU is at least 6 N · rate / best peak.
    assert run["mfu"] >= 6 * params * run["tokens_per_second"] / report["best_matmul_peak_flops"] * (1 - 1e-9)
    # Attention's share: 12 · L·d · length / 6 N, with L·d = 2 layers × 2 heads × 16 = 64; the length an
    # average token sits in lies between 1 and --max-length.
    length = (run["mfu_with_attention"] / run["mfu"] - 1) * 6 * params / (12 * 64)
    assert 1 <= length <= 128
    # 4 pairs a step: 8 sequences of at most 128 tokens.
    assert 8 <= run["mean_tokens_per_step"] <= 8 * 128


def test_script_runs_zoo_with_and_without_the_reference_cache(shared_data, tmp_path):
    out = tmp_path / "throughput.json"
    completed = run_script(hh_sample(shared_data, tmp_path), out, "--precompute", "both", "--memory-steps", "2")
    assert "zoo  precompute=off" in completed.stdout
    assert "zoo  precompute=on " in completed.stdout
    assert "26,912 matmul parameters" in completed.stdout

    report = json.loads(out.read_text())
    assert report["matmul_parameters"] == 26912
    assert report["reference_bytes"] == (26912 + 260 * 32) * 4  # every parameter, float32
    runs = {run["precompute"]: run for run in report["runs"]}
    assert [(r["tool"], r["precompute"]) for r in report["runs"]] == [("zoo", False), ("zoo", True)]
    off, on = runs[False], runs[True]
    for run in (off, on):
        check_run(run, report)
        assert run["options"] == {"padding_free": False, "shared_prefix": False, "group_by_length": False}
    # The same batches either way: the same real tokens.
    assert off["mean_tokens_per_step"] == on["mean_tokens_per_step"]

    # DPO runs the reference forward pass every step without the cache: + 2 N, and + 4 · L·d · length.
    assert off["mfu_with_reference"] > off["mfu"]
    assert off["mfu_with_reference"] / off["mfu"] == pytest.approx(8 / 6)
    assert ((off["mfu_with_attention_and_reference"] - off["mfu_with_reference"])
            / (off["mfu_with_attention"] - off["mfu"])) == pytest.approx(16 / 12)
    assert on["mfu_with_reference"] == on["mfu"]
    assert on["mfu_with_attention_and_reference"] == on["mfu_with_attention"]

    # Peak memory: the cache run holds no reference model and runs no reference forward pass.
    assert off["peak_memory_bytes"] > on["peak_memory_bytes"] > 0
    saved = off["peak_memory_bytes"] - on["peak_memory_bytes"]
    ratios = report["ratios"]
    assert ratios["zoo peak memory saved by the cache (MiB)"] == pytest.approx(saved / 2**20)
    assert ratios["... over the reference model's size"] == pytest.approx(saved / report["reference_bytes"])


def test_script_runs_padding_free(shared_data, tmp_path):
    out = tmp_path / "throughput.json"
    completed = run_script(hh_sample(shared_data, tmp_path), out, "--precompute", "on", "--padding-free",
                           "--memory-steps", "0")
    assert "zoo  precompute=on " in completed.stdout and "precompute=off" not in completed.stdout
    report = json.loads(out.read_text())
    [run] = report["runs"]
    assert (run["tool"], run["precompute"]) == ("zoo", True)
    assert run["options"] == {"padding_free": True, "shared_prefix": False, "group_by_length": False}
    check_run(run, report)
    assert run["mfu_with_reference"] == run["mfu"]
    assert run["peak_memory_bytes"] is None  # --memory-steps 0: no memory run
    assert report["ratios"] == {}


def test_layouts_run_side_by_side(shared_data, tmp_path):
    out = tmp_path / "throughput.json"
    completed = run_script(hh_sample(shared_data, tmp_path), out, "--precompute", "on", "--layouts",
                           "padded,padding-free,shared-prefix", "--memory-steps", "1")
    for tool in ("zoo-padded", "zoo-padding-free", "zoo-shared-prefix"):  # names padded to one column
        assert re.search(rf"^{tool} +precompute=on ", completed.stdout, re.MULTILINE)
    report = json.loads(out.read_text())
    assert [(r["tool"], r["options"]["padding_free"], r["options"]["shared_prefix"]) for r in report["runs"]] == [
        ("zoo-padded", False, False), ("zoo-padding-free", True, False), ("zoo-shared-prefix", False, True)]
    for run in report["runs"]:
        check_run(run, report)
        assert run["peak_memory_bytes"] > 0
    # the same batches in every layout; one copy of each prompt holds less for backward
    assert len({run["mean_tokens_per_step"] for run in report["runs"]}) == 1
    padded, _, shared = report["runs"]
    assert shared["peak_memory_bytes"] < padded["peak_memory_bytes"]


def test_layouts_are_checked(throughput, capsys):
    assert throughput.parse_args([]).layouts == ["padded"]
    assert throughput.parse_args(["--padding-free"]).layouts == ["padding-free"]
    with pytest.raises(SystemExit):
        throughput.parse_args(["--layouts", "padded,packed"])
    assert "packed" in capsys.readouterr().err
