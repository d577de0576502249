"""The canary carries a stage cache across a code change only when its stages rebuild bit for bit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.bench import sources
from zoo.bench.cache import StageCache
from zoo.bench.canary import _build_prefix, _LookupOnly, run_canary
from zoo.bench.loading import load_bench_config
from zoo.errors import ConfigError

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "bench" / "smoke.yaml"


@pytest.fixture
def config(tmp_path):
    import torch

    threads = torch.get_num_threads()
    config = load_bench_config(SMOKE, [f"cache_dir={tmp_path / 'cache'}", "canary.until=pretrain"])
    if config.threads is not None:  # the earlier stages are built as a run builds them
        torch.set_num_threads(config.threads)
    yield config
    sources.use_aliases(None)
    torch.set_num_threads(threads)


def test_a_numerics_neutral_change_carries_the_cache_and_a_moved_number_does_not(config, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    earlier = sources.code_source_hash()
    assert run_canary(config, root, earlier)["note"].startswith("the code hash did not change")
    before = _build_prefix(config, StageCache(root), "pretrain")  # the earlier code's stages
    assert [s.kind for s in before] == ["task", "init", "pretrain"]

    monkeypatch.setattr(sources, "code_source_hash", lambda: "f" * 16)  # a refactor: another code hash
    with pytest.raises(ConfigError, match="not in"):  # without the alias, today's keys find nothing
        _build_prefix(config, _LookupOnly(root), "pretrain")
    said: list[str] = []
    record = run_canary(config, root, earlier, announce=said.append)
    assert record["identical"] is True and record["from"] == earlier and record["to"] == "f" * 16
    # each stage is announced before it is rebuilt (it can take minutes), then compared
    assert said[:4] == ["canary: rebuilding the first seed's stages up to pretrain with today's code",
                        "canary stage 1 of 3: task", "canary stage 2 of 3: init", "canary stage 3 of 3: pretrain"]
    assert said[-1] == "canary pretrain: bit-identical"
    assert [s["kind"] for s in record["stages"]] == ["task", "init", "pretrain"]
    assert all(s["today"] != s["earlier"] and s["differences"] == [] for s in record["stages"])
    aliases = json.loads((root / sources.ALIASES).read_text())
    assert aliases["f" * 16]["from"] == earlier
    sources.use_aliases(root)
    assert sources.core_source_hash() == earlier and sources.applied_canary()["identical"]
    reused = _build_prefix(config, _LookupOnly(root), "pretrain")  # the earlier stages, under the alias
    assert [s.key for s in reused] == [s.key for s in before]

    weights = next((before[-1].path / "run" / "model").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # the earlier pretraining "differs"
    monkeypatch.setattr(sources, "code_source_hash", lambda: "e" * 16)
    sources.use_aliases(None)
    moved = run_canary(config, root, earlier)
    assert moved["identical"] is False
    assert moved["stages"][-1]["differences"] == [f"run/model/{weights.name}"]
    assert "e" * 16 not in json.loads((root / sources.ALIASES).read_text())


def test_the_canary_needs_an_earlier_result_to_compare_with(tmp_path, capsys):
    from zoo.cli import main

    assert main(["bench", str(SMOKE), "--canary", "--output", str(tmp_path / "none")]) == 2
    assert "--canary compares with the result in" in capsys.readouterr().err
    assert main(["bench", "--check", str(tmp_path), "--canary"]) == 2  # the check trains nothing


def test_the_canary_rebuilds_with_the_configs_thread_count(config, tmp_path, monkeypatch):
    """A run with ``threads: 1`` built its stages single-threaded; rebuilt with more threads their
    float reductions differ, so the canary must use the config's count too."""
    import dataclasses

    import torch

    from zoo.bench import canary

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(sources, "code_source_hash", lambda: "f" * 16)
    monkeypatch.setattr(canary, "_build_prefix", lambda *args: [])
    (tmp_path / "cache").mkdir()
    record = run_canary(dataclasses.replace(config, threads=1), tmp_path / "cache", "e" * 16)
    assert calls == [1]
    assert record["threads"] == torch.get_num_threads()  # the record says which count rebuilt the stages


def test_the_canary_can_reach_the_preference_data_and_the_proxy_reward_model(tmp_path, monkeypatch):
    """``canary.until: reward_model`` rebuilds the first seed's pipeline through the proxy reward model
    (a task without pretraining or SFT, as the real-text tasks run, samples its starting model); a
    changed preference label is caught there and in nothing upstream."""
    import torch

    threads = torch.get_num_threads()
    config = load_bench_config(SMOKE, [f"cache_dir={tmp_path / 'cache'}", "canary.until=reward_model",
                                       "sft.enabled=false"])
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        root = tmp_path / "cache"
        earlier = sources.code_source_hash()
        before = _build_prefix(config, StageCache(root), "reward_model")
        assert [s.kind for s in before] == ["task", "init", "pretrain", "preferences", "reward_model"]
        monkeypatch.setattr(sources, "code_source_hash", lambda: "f" * 16)
        record = run_canary(config, root, earlier)
        assert record["identical"] is True
        assert [s["kind"] for s in record["stages"]] == ["task", "init", "pretrain", "preferences", "reward_model"]

        pairs = before[3].path / "pairs.jsonl"
        rows = pairs.read_text().splitlines()
        first = json.loads(rows[0])
        first["chosen"], first["rejected"] = first["rejected"], first["chosen"]
        pairs.write_text("\n".join([json.dumps(first)] + rows[1:]) + "\n")  # the earlier labels "differ"
        monkeypatch.setattr(sources, "code_source_hash", lambda: "e" * 16)
        sources.use_aliases(None)
        moved = run_canary(config, root, earlier)
        assert moved["identical"] is False
        assert [s["kind"] for s in moved["stages"] if s["differences"]] == ["preferences"]
        assert moved["stages"][3]["differences"] == ["pairs.jsonl"]
    finally:
        sources.use_aliases(None)
        torch.set_num_threads(threads)


def test_an_adapter_config_is_compared_as_the_set_it_is(tmp_path):
    """peft writes a LoRA adapter's target_modules from a set, in an order that varies between
    processes; the canary compares the set, and still sees any other change."""
    from zoo.bench.canary import _outputs

    def adapter(folder, modules, r=16):
        (folder / "run" / "model" / "adapter").mkdir(parents=True)
        (folder / "run" / "model" / "adapter" / "adapter_config.json").write_text(
            json.dumps({"r": r, "target_modules": modules}))
        return _outputs(folder)

    one = adapter(tmp_path / "a", ["q_proj", "v_proj", "k_proj"])
    assert adapter(tmp_path / "b", ["k_proj", "q_proj", "v_proj"]) == one
    assert adapter(tmp_path / "c", ["k_proj", "q_proj", "v_proj"], r=8) != one
    assert adapter(tmp_path / "d", ["k_proj", "q_proj"]) != one


@pytest.mark.parametrize("earlier, today, why", [
    (b"from zoo import read_rows, ConfigError\ndef f():\n    from zoo import g\n    return read_rows(1)\n",
     b"from zoo.data import read_rows\nfrom zoo.errors import ConfigError\ndef f():\n    from zoo.x import g\n"
     b"    return read_rows(1)\n", None),
    # a lazy import, and a name kept for annotations only (what a torch-free start-up does)
    (b"from __future__ import annotations\nimport torch\nfrom torch import Tensor\n"
     b"def f(x: Tensor) -> Tensor:\n    return torch.relu(x)\n",
     b"from __future__ import annotations\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     b"    from torch import Tensor\ndef f(x: Tensor) -> Tensor:\n    import torch\n\n    return torch.relu(x)\n",
     None),
    (b"from zoo import read_rows\nx = read_rows(1)\n", b"from zoo.data import read_rows\nx = read_rows(2)\n",
     "statements other than imports changed"),
    (b"import math\nfrom zoo import f\n", b"import cmath as math\nfrom zoo import f\n",
     "it imports 'math' (cmath), which it did not"),
    (b"from zoo import f\n", b"from zoo.data import f as g\n", "it imports 'g' (zoo…f), which it did not"),
    (b"from zoo import f\n", b"from zoo import f, g\n", "it imports 'g' (zoo…g), which it did not"),
    (b"from .x import f\n", b"from zoo.x import f\n", "it imports 'f' (zoo…f), which it did not"),
    # a name no longer imported that the code still reads (a builtin or a global would answer)
    (b"from math import pow\ny = pow(2, 3)\n", b"y = pow(2, 3)\n", "it no longer imports 'pow', which it reads"),
    (b"import torch\nfrom torch import Tensor\ny = torch.zeros(1)\n", b"import torch\ny = torch.zeros(1)\n", None),
])
def test_a_change_confined_to_core_imports_is_told_apart(earlier, today, why):
    assert sources.change_beyond_imports(earlier, today) == why


def test_a_plugin_changed_only_in_its_core_imports_is_carried_with_the_core(config, tmp_path, monkeypatch):
    """The task plugin's earlier source imported ConfigError from another core module; its stages
    are found under the earlier digest only through the canary's plugin alias."""
    from zoo_plugins.tasks import fables

    root = tmp_path / "cache"
    path = Path(fables.__file__).resolve()
    line = b"from zoo import ConfigError, RewardConfig, RewardFunction, hookimpl"
    assert line in path.read_bytes()
    earlier_text = path.read_bytes().replace(line, b"from zoo.errors import ConfigError\n"
                                                   b"from zoo import RewardConfig, RewardFunction, hookimpl")
    earlier_digest, today_digest = sources.code_digest(earlier_text), sources._file_digest(path)
    assert earlier_digest != today_digest
    real = sources._file_digest
    monkeypatch.setattr(sources, "_file_digest", lambda p: earlier_digest if p == path else real(p))
    earlier_core = sources.code_source_hash()
    before = _build_prefix(config, StageCache(root), "pretrain")  # built by "the earlier code"
    monkeypatch.setattr(sources, "_file_digest", real)
    monkeypatch.setattr(sources, "code_source_hash", lambda: "f" * 16)  # and a core refactor

    def reader(text):
        return lambda p: text if p == path else p.read_bytes()

    with pytest.raises(ConfigError, match="not in"):  # without the plugin alias nothing is found
        run_canary(config, root, earlier_core)
    record = run_canary(config, root, earlier_core, earlier_source=reader(earlier_text))
    assert record["identical"] is True and record["plugins"] == {today_digest: earlier_digest}
    sources.use_aliases(root)
    assert sources.applied_plugin_aliases() == {today_digest: earlier_digest}
    assert [s.key for s in _build_prefix(config, _LookupOnly(root), "pretrain")] == [s.key for s in before]

    # carried a second time (another core refactor, the plugin as the carried result had it): its
    # stages are still keyed by the digest the first canary aliased, so the aliases compose
    sources.use_aliases(None)
    monkeypatch.setattr(sources, "code_source_hash", lambda: "d" * 16)
    with pytest.raises(ConfigError, match="not in"):  # today's digest alone finds nothing
        run_canary(config, root, earlier_core, earlier_source=reader(path.read_bytes()))
    again = run_canary(config, root, earlier_core, earlier_source=reader(path.read_bytes()),
                       earlier_plugin_aliases=record["plugins"])
    assert again["identical"] is True and again["plugins"] == {today_digest: earlier_digest}

    # an earlier source that differs in a statement is not aliased: its stages cannot be found
    sources.use_aliases(None)
    monkeypatch.setattr(sources, "code_source_hash", lambda: "e" * 16)
    changed = earlier_text.replace(b"MAX_SENTENCES = 3", b"MAX_SENTENCES = 4")
    assert changed != earlier_text
    notes = []
    with pytest.raises(ConfigError, match="not in"):
        run_canary(config, root, earlier_core, notes.append, earlier_source=reader(changed))
    assert "canary: fables.py: statements other than imports changed (its stages rebuild)" in notes


def test_the_earlier_source_is_read_from_git_at_the_results_commit():
    from zoo.bench.provenance import git_source
    from zoo_plugins.tasks import fables

    path = Path(fables.__file__).resolve()
    assert git_source("HEAD")(path) == subprocess_show("HEAD", path)
    assert git_source("0" * 40)(path) is None  # no such commit: nothing to compare with


def subprocess_show(commit: str, path: Path) -> bytes:
    import subprocess

    top = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "--show-toplevel"], capture_output=True,
                         text=True, check=True).stdout.strip()
    return subprocess.run(["git", "-C", top, "show", f"{commit}:{path.relative_to(Path(top).resolve()).as_posix()}"],
                          capture_output=True, check=True).stdout
