"""Provenance of benchmark results: git state, and ``zoo bench --check`` on a throwaway repository."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from zoo.bench import provenance
from zoo.bench.provenance import CHECK_OK, CHECK_STALE, CHECK_UNKNOWN, check_result_file, check_results, git_state
from zoo.cli import main

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def render(results):
    return f"table of {results['value']}\n"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with zoo/, plugins/ and configs/bench/ committed, and a result written at that commit."""
    root = tmp_path / "repo"
    for name in ("zoo/core.py", "plugins/algo.py", "configs/bench/tiny.yaml", "README.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"# {name}\n")
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "code")
    state = git_state(root)
    assert state["clean"] is True and len(state["commit"]) == 40 and state["dirty"] == []
    results = {"value": 3, **state}
    out = root / "benchmarks" / "results" / "tiny"
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps(results))
    (out / "results.md").write_text(render(results))
    monkeypatch.setattr("zoo.bench.report.markdown", render)
    return root, out


def test_a_result_matches_until_the_code_changes(repo):
    root, out = repo
    verdict = check_result_file(out / "results.json", root)
    assert verdict.status == CHECK_OK, verdict.reasons
    (root / "README.md").write_text("docs only\n")  # outside zoo/, plugins/, configs/bench/
    assert check_result_file(out / "results.json", root).status == CHECK_OK
    (root / "plugins" / "algo.py").write_text("# changed\n")
    verdict = check_result_file(out / "results.json", root)
    assert verdict.status == CHECK_STALE and "plugins/algo.py" in verdict.reasons[0]
    (root / "plugins" / "algo.py").write_text("# plugins/algo.py\n")
    (root / "zoo" / "new.py").write_text("x = 1\n")  # an untracked source file counts too
    assert check_result_file(out / "results.json", root).status == CHECK_STALE


def test_a_result_from_a_dirty_tree_or_with_an_edited_table_is_stale(repo):
    root, out = repo
    (out / "results.md").write_text("table of 4\n")
    verdict = check_result_file(out / "results.json", root)
    assert verdict.status == CHECK_STALE and "results.md differs" in verdict.reasons[-1]
    (out / "results.md").write_text(render({"value": 3}))
    (root / "configs" / "bench" / "tiny.yaml").write_text("seeds: [0]\n")
    dirty = git_state(root)
    assert dirty["clean"] is False and dirty["dirty"] == ["configs/bench/tiny.yaml"]
    results = {"value": 3, **dirty}
    (out / "results.json").write_text(json.dumps(results))
    verdict = check_result_file(out / "results.json", root)
    assert verdict.status == CHECK_STALE and "uncommitted changes (configs/bench/tiny.yaml)" in verdict.reasons[0]


def test_unknown_commits_and_missing_records_cannot_be_checked(repo, tmp_path):
    root, out = repo
    results = json.loads((out / "results.json").read_text())
    (out / "results.json").write_text(json.dumps({**results, "commit": "0" * 40}))
    assert check_result_file(out / "results.json", root).status == CHECK_UNKNOWN
    (out / "results.json").write_text(json.dumps({"value": 3}))
    assert check_result_file(out / "results.json", root).status == CHECK_UNKNOWN
    assert git_state(tmp_path / "nowhere") == {"commit": None, "clean": None, "dirty": []}
    assert [v.path.name for v in check_results(root / "benchmarks", root)] == ["results.json"]


def test_the_check_command_exits_with_the_verdict(repo, monkeypatch, capsys):
    root, out = repo
    monkeypatch.setattr(provenance, "repository_root", lambda: root)
    assert main(["bench", "--check", str(root / "benchmarks")]) == CHECK_OK
    assert "up to date" in capsys.readouterr().out
    (root / "zoo" / "core.py").write_text("# edited\n")
    assert main(["bench", "--check", str(root / "benchmarks")]) == CHECK_STALE
    assert "STALE" in capsys.readouterr().out
    assert main(["bench", "--check", str(root / "missing")]) == CHECK_UNKNOWN
    assert main(["bench", "configs/bench/tiny.yaml", "--check", str(out)]) == 2  # a config error, no traceback
