"""No work lost to an error that comes after it: every output location is checked before the work
starts, and eval / bench / pairs stop on SIGINT and SIGTERM like train, even when started in the background."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import zoo.app.pairs
from zoo.cli import main
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.training_guard import train

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "bench" / "smoke.yaml"


def _no_work(*args, **kwargs):
    raise AssertionError("the work started although its output cannot be written")


def _pairs_config(tmp_path: Path, output: Path) -> Path:
    raw = {"prompts": "builtin:tiny_prompts", "builtin_size": 8, "max_prompts": 2,
           "models": [{"name": "tiny", "samples_per_prompt": 2}], "reward": {"function": "tiny_sentiment"},
           "mode": "best_vs_random", "sampling": {"max_new_tokens": 4}, "batch_size": 2, "output": str(output)}
    path = tmp_path / "pairs.yaml"
    path.write_text(json.dumps(raw))
    return path


def test_eval_output_that_is_a_file_is_refused_before_any_suite_runs(tmp_path, monkeypatch, capsys):
    import zoo.eval

    monkeypatch.setattr(zoo.eval, "run_suites", _no_work)
    output = tmp_path / "results"
    output.write_text("an earlier report")
    assert main(["eval", "--model", "tiny", "--suites", "arc_easy", "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert f"--output = '{output}' is a file" in err and "Traceback" not in err
    assert output.read_text() == "an earlier report"


def test_eval_output_in_a_read_only_place_is_refused_before_any_suite_runs(tmp_path, monkeypatch, capsys):
    import zoo.eval

    monkeypatch.setattr(zoo.eval, "run_suites", _no_work)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    assert main(["eval", "--model", "tiny", "--suites", "arc_easy", "--output", str(locked / "out")]) == 2
    assert f"'{locked}' is not writable" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["under_a_file", "a_folder"])
def test_pairs_output_that_cannot_be_written_is_refused_before_sampling(tmp_path, monkeypatch, capsys, where):
    monkeypatch.setattr(zoo.app.pairs, "_sample_model", _no_work)
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.jsonl").mkdir()
    output = tmp_path / ("file/pairs.jsonl" if where == "under_a_file" else "folder.jsonl")
    assert main(["pairs", str(_pairs_config(tmp_path, output))]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("is a file, not a folder" if where == "under_a_file" else "is a folder; name a file inside it") in err


def test_a_cache_home_that_is_a_file_is_refused_before_the_reference_log_probs_are_computed(tmp_path, tiny_run,
                                                                                             monkeypatch):
    import zoo.refcache.compute

    monkeypatch.setattr(zoo.refcache.compute, "compute_reference_logps", _no_work)
    home = tmp_path / "cache-home"
    home.write_text("not a folder")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(home))
    with pytest.raises(ConfigError, match=r"reference cache .*cannot be created: .*is a file"):
        train(load_config(raw=tiny_run("dpo", tmp_path / "run", steps=1)))
    assert not (tmp_path / "run").exists()


def test_a_read_only_bench_cache_dir_is_refused_before_any_stage_runs(tmp_path, monkeypatch, capsys):
    import zoo.bench.runner

    monkeypatch.setattr(zoo.bench.runner, "Stages", _no_work)
    cache = tmp_path / "cache"
    cache.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == cache else real_access(p, mode))
    assert main(["bench", str(SMOKE), f"cache_dir={cache}", "--output", str(tmp_path / "out")]) == 2
    assert f"cache_dir = '{cache}' is not writable" in capsys.readouterr().err


@pytest.fixture
def background_job():
    """SIGINT ignored, as a non-interactive shell leaves it for a job started with `&`."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def _signal_self(signum):
    def work(*args, **kwargs):
        os.kill(os.getpid(), signum)
        for _ in range(1000):  # the handler runs between bytecodes; the work would otherwise go on to the end
            sum(range(1000))
        return "finished regardless"
    return work


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("command", ["eval", "pairs", "bench"])
def test_eval_pairs_and_bench_stop_on_a_signal_with_a_message(tmp_path, monkeypatch, capsys, background_job, command,
                                                                signum, status):
    import zoo.bench.runner
    import zoo.eval

    if command == "eval":
        monkeypatch.setattr(zoo.eval, "run_suites", _signal_self(signum))
        argv = ["eval", "--model", "tiny", "--suites", "arc_easy", "--limit", "1"]
        data = tmp_path / "arc"
        data.mkdir()
        (data / "arc_easy.jsonl").write_text(json.dumps({"query": "Q?", "choices": ["a", "b"], "gold": 0}) + "\n")
        argv += ["--data-dir", str(tmp_path)]
    elif command == "pairs":
        monkeypatch.setattr(zoo.app.pairs, "_sample_model", _signal_self(signum))
        argv = ["pairs", str(_pairs_config(tmp_path, tmp_path / "pairs.jsonl"))]
    else:
        monkeypatch.setattr(zoo.bench.runner, "Stages", _signal_self(signum))
        argv = ["bench", str(SMOKE), f"cache_dir={tmp_path / 'cache'}", "--output", str(tmp_path / "out")]
    assert main(argv) == status
    err = capsys.readouterr().err
    assert f"zoo {command} was stopped by {signal.Signals(signum).name}" in err and "Traceback" not in err
    assert not (tmp_path / "pairs.jsonl").exists() and not list(tmp_path.glob("*.partial"))
