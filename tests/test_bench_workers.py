"""``zoo bench --workers N``: stages built by several processes at once, the same result as one process."""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest
import yaml

from zoo.bench.cache import StageBusy, StageCache
from zoo.bench.runner import _until_built
from zoo.cli import main

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "bench" / "smoke.yaml"


def test_a_cache_that_does_not_wait_says_a_stage_is_busy_and_builds_it_once_free(tmp_path):
    cache = StageCache(tmp_path, wait=False)
    built = []

    def build(folder):
        built.append(folder.name)
        return {"value": 1}

    with open(tmp_path / "eval-abc.lock", "w") as held:  # another process building eval-abc
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StageBusy):
            cache.get_or_build("eval", "abc", build)
        assert built == [] and not (tmp_path / "eval-abc").exists()
    stage = cache.get_or_build("eval", "abc", build)  # the lock is free: built now
    assert not stage.reused and built == ["eval-abc"]
    assert cache.get_or_build("eval", "abc", build).reused and built == ["eval-abc"]


def test_until_built_comes_back_to_busy_items_until_every_one_is_built():
    """Item 'b' is busy twice before it builds: the first pass builds 'a' and 'c', then 'b' alone is
    retried, with a pause after the pass that built nothing."""
    calls, busy = [], {"b": 2}

    def build(item):
        calls.append(item)
        if busy.get(item):
            busy[item] -= 1
            raise StageBusy(item)

    _until_built(["a", "b", "c"], build, pause=0.0)
    assert calls == ["a", "b", "c", "b", "b"]


def _small_config(tmp_path: Path) -> Path:
    config = yaml.safe_load(SMOKE.read_text())
    config["seeds"] = [0, 1]
    config["runs"] = [run for run in config["runs"] if run["label"] in ("SFT", "best-of-4", "DPO", "GRPO")]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _measured(results: dict) -> dict:
    return {c["label"]: {seed: (v["gold_per_prompt"], v["kl_per_prompt"], v.get("steps"))
                         for seed, v in c["seeds"].items()} for c in results["contenders"]}


def test_two_workers_build_the_run_that_one_process_builds(tmp_path, capfd):
    config = _small_config(tmp_path)
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    assert main(["bench", str(config), f"cache_dir={single / 'cache'}", "--output", str(single)]) == 0
    capfd.readouterr()
    assert main(["bench", str(config), f"cache_dir={parallel / 'cache'}", "--output", str(parallel),
                 "--workers", "2"]) == 0
    out = capfd.readouterr().out
    one = json.loads((single / "results.json").read_text())
    two = json.loads((parallel / "results.json").read_text())
    assert _measured(two) == _measured(one)  # bit for bit: threads: 1 in both
    assert (two["workers"], one["workers"]) == (2, 1) and two["torch_threads"] == 1
    # both workers went through the whole run (which built what depends on timing), and the report
    # that followed found every stage built
    assert "worker 0/2: done: built" in out and "worker 1/2: done: built" in out
    assert "0 stage(s) built" in out
    stages = {p.name for p in (parallel / "cache").iterdir() if p.is_dir()}
    assert stages == {p.name for p in (single / "cache").iterdir() if p.is_dir()}


def test_workers_must_be_positive_and_not_with_perturb(tmp_path, capsys):
    config = _small_config(tmp_path)
    assert main(["bench", str(config), "--workers", "0"]) == 2
    assert "--workers 0: must be at least 1" in capsys.readouterr().err
    assert main(["bench", str(config), "--workers", "2", "--perturb"]) == 2
    assert "--perturb" in capsys.readouterr().err
