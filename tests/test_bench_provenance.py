"""Provenance of benchmark results: git state, source hashes that ignore comments, and
``zoo bench --check``, which recomputes a result from its stored values."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from zoo.bench import sources
from zoo.bench.check import CHECK_OK, CHECK_STALE, CHECK_UNKNOWN, check_result_file, check_results
from zoo.bench.provenance import git_state, run_source_hash
from zoo.bench.report.files import markdown
from zoo.bench.sources import code_digest
from zoo.cli import main


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def result(tmp_path):
    """A result (tests/bench_results.py) as ``zoo bench`` writes it: results.json and results.md."""
    from bench_results import derived_results

    results = derived_results()
    out = tmp_path / "benchmarks" / "results" / "tiny"
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(markdown(results))
    return out


def edit(out, change):
    results = json.loads((out / "results.json").read_text())
    change(results)
    (out / "results.json").write_text(json.dumps(results, indent=2))


def test_a_fresh_result_checks_out(result):
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_OK, verdict.reasons
    assert "every statistic recomputes" in verdict.reasons[0]


def test_an_edited_per_seed_value_fails_the_check(result):
    def nudge(results):
        results["contenders"][1]["seeds"]["1"]["gold_per_prompt"][0] += 0.5

    edit(result, nudge)
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_STALE
    assert "recorded statistic(s) differ from what its stored values give" in verdict.reasons[0]
    assert "results.md differs" in verdict.reasons[-1]


def test_an_edited_statistic_fails_even_with_its_table_edited_to_match(result):
    def flatter(results):
        results["contenders"][2]["vs_best"]["verdict"] = "equivalent"

    edit(result, flatter)
    (result / "results.md").write_text((result / "results.md").read_text().replace(": cannot tell", ": equivalent"))
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_STALE and "contenders['PPO (proxy RM)'].vs_best.verdict" in verdict.reasons[0]


def test_another_source_hash_or_package_version_fails_the_check(result):
    edit(result, lambda r: r.update(source_hash="0123456789abcdef"))
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_STALE and "source hash 0123456789abcdef is not today's" in verdict.reasons[0]
    edit(result, lambda r: r.update(source_hash=run_source_hash(r["config"])))
    assert check_result_file(result / "results.json").status == CHECK_OK
    edit(result, lambda r: r["packages"].update(torch="0.0.1"))
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_STALE and "torch 0.0.1 →" in verdict.reasons[0]


def test_a_dirty_tree_an_edited_table_or_an_older_format_is_reported(result):
    (result / "results.md").write_text("edited\n")
    assert "results.md differs" in check_result_file(result / "results.json").reasons[-1]
    (result / "results.md").unlink()
    assert check_result_file(result / "results.json").status == CHECK_STALE
    edit(result, lambda r: r.update(clean=False, dirty=["zoo/core.py"]))
    verdict = check_result_file(result / "results.json")
    assert any("uncommitted changes (zoo/core.py)" in reason for reason in verdict.reasons)
    edit(result, lambda r: r.pop("format"))
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_UNKNOWN and "results format 1" in verdict.reasons[0]
    (result / "results.json").write_text("{")
    assert check_result_file(result / "results.json").status == CHECK_UNKNOWN


def test_a_changed_config_file_fails_the_check(result, tmp_path):
    from bench_results import SMOKE

    config = tmp_path / "smoke.yaml"
    shutil.copy(SMOKE, config)
    stored = json.loads((result / "results.json").read_text())
    runs = json.dumps([{k: v for k, v in run.items() if v not in (None, {}, False)}
                       for run in stored["config"]["runs"]])
    claims = json.dumps([{k: c[k] for k in ("text", "better", "worse")} for c in stored["config"]["claims"]])
    edit(result, lambda r: r.update(config_file=str(config), overrides=["seeds=[0, 1, 2]", f"runs={runs}",
                                                                        f"claims={claims}"]))
    assert check_result_file(result / "results.json").status == CHECK_OK, check_result_file(
        result / "results.json").reasons

    def as_perturbed(r):  # the perturbation run: the same config on seeds shifted by 100
        r["config"].update(seeds=[100, 101, 102], tuning_seeds=[1102])

    edit(result, as_perturbed)
    assert "changed since the run (keys: seeds, tuning_seeds)" in check_result_file(result / "results.json").reasons[0]
    edit(result, lambda r: r.update(perturbed=True))
    assert check_result_file(result / "results.json").status == CHECK_OK
    config.write_text(config.read_text().replace("heldout_pairs: 16", "heldout_pairs: 17"))
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_STALE and "changed since the run (keys: preferences)" in verdict.reasons[0]

    # A setting added to the schema after the run, at its default, changes nothing; set otherwise, it does.
    config.write_text(config.read_text().replace("heldout_pairs: 17", "heldout_pairs: 16"))
    edit(result, lambda r: r["config"]["reward_model"].pop("preferences", None))
    assert check_result_file(result / "results.json").status == CHECK_OK
    config.write_text(config.read_text().replace("reward_model:\n", "reward_model:\n  preferences: rankings\n", 1))
    verdict = check_result_file(result / "results.json")
    assert verdict.status == CHECK_STALE and "changed since the run (keys: reward_model)" in verdict.reasons[0]


def test_source_digests_ignore_comments_docstrings_and_layout_but_not_code():
    code = b'"""Module doc."""\nimport math\n\n\ndef f(x):\n    """Doc."""\n    return x + 1  # why\n'
    same = b"import math\n# a new comment\ndef f(x):\n    return (x +\n            1)\n"
    assert code_digest(code) == code_digest(same)
    assert code_digest(code) != code_digest(code.replace(b"x + 1", b"x + 2"))
    assert code_digest(b"def f():\n    'only a docstring'\n") == code_digest(b"def f():\n    pass\n")
    assert code_digest(b"x = 'a string, not a docstring'\n") != code_digest(b"x = 'another'\n")


def test_every_module_left_out_of_the_code_hash_exists():
    """A presentation module that moved without its entry here would silently join the hash."""
    root = sources.package_root()
    assert sorted(name for name in sources.PRESENTATION if not (root / name).is_file()) == []


def test_a_comment_only_change_to_the_core_stales_nothing(result, monkeypatch):
    import zoo.bench.stages as stages

    path = sources.module_file(stages)
    original = path.read_bytes()
    before = sources.code_source_hash()
    try:
        path.write_bytes(original + b"\n# a comment that changes no number\n")
        sources.code_source_hash.cache_clear()
        sources._file_digest.cache_clear()
        assert sources.code_source_hash() == before
        assert check_result_file(result / "results.json").status == CHECK_OK
        path.write_bytes(original + b"\nSOMETHING = 1\n")
        sources.code_source_hash.cache_clear()
        sources._file_digest.cache_clear()
        assert sources.code_source_hash() != before
        assert check_result_file(result / "results.json").status == CHECK_STALE
    finally:
        path.write_bytes(original)
        sources.code_source_hash.cache_clear()
        sources._file_digest.cache_clear()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_names_uncommitted_files(tmp_path):
    root = tmp_path / "repo"
    for name in ("zoo/core.py", "plugins/algo.py", "configs/bench/tiny.yaml", "README.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"# {name}\n")
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "code")
    state = git_state(root)
    assert state["clean"] is True and len(state["commit"]) == 40 and state["dirty"] == []
    (root / "README.md").write_text("docs only\n")  # outside zoo/, plugins/, configs/bench/
    assert git_state(root)["clean"] is True
    (root / "configs" / "bench" / "tiny.yaml").write_text("seeds: [0]\n")
    assert git_state(root)["dirty"] == ["configs/bench/tiny.yaml"]
    assert git_state(tmp_path / "nowhere") == {"commit": None, "clean": None, "dirty": []}


def test_the_check_command_exits_with_the_verdict(result, capsys):
    root = result.parents[1]
    assert [v.path.name for v in check_results(root)] == ["results.json"]
    assert main(["bench", "--check", str(root)]) == CHECK_OK
    assert "up to date" in capsys.readouterr().out
    edit(result, lambda r: r["contenders"][0]["seeds"]["0"]["win_per_prompt"].__setitem__(0, 1.0))
    assert main(["bench", "--check", str(root)]) == CHECK_STALE
    assert "STALE" in capsys.readouterr().out
    assert main(["bench", "--check", str(root / "missing")]) == CHECK_UNKNOWN
    assert main(["bench", "configs/bench/tiny.yaml", "--check", str(result)]) == 2  # a config error, no traceback


def test_a_canary_vouches_for_the_one_code_hash_it_compared(result, monkeypatch):
    earlier = sources.code_source_hash()
    monkeypatch.setattr(sources, "code_source_hash", lambda: "f" * 16)  # a refactor since the run
    assert check_result_file(result / "results.json").status == CHECK_STALE
    edit(result, lambda r: r.update(canary={"from": earlier, "to": "f" * 16, "identical": True}))
    assert check_result_file(result / "results.json").status == CHECK_OK
    monkeypatch.setattr(sources, "code_source_hash", lambda: "e" * 16)  # a further change: not vouched for
    assert check_result_file(result / "results.json").status == CHECK_STALE
    monkeypatch.setattr(sources, "code_source_hash", lambda: "f" * 16)
    edit(result, lambda r: r["canary"].update(identical=False))
    assert check_result_file(result / "results.json").status == CHECK_STALE
