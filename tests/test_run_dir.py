"""The output directory: checked before anything is written, --overwrite only over a zoo run, one run at a time."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from zoo import cli
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.run_dir import MARKER, RunLock, check_output_dir, resolve_output_dir
from zoo.run_files import FILES
from zoo.training_guard import train

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def _foreign(directory: Path) -> Path:
    (directory / "checkpoints").mkdir(parents=True)
    (directory / "checkpoints" / "mine.pt").write_bytes(b"someone's weights")
    (directory / "config.yaml").write_text("mine: true\n")
    return directory


def _config_file(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("override", ["train.accelerator=bogus", "train.strategy=dpp", "train.devices=-3"])
def test_overwrite_with_a_bad_trainer_setting_touches_nothing(tmp_path, tiny_run, capsys, override):
    """The Trainer settings are checked with the rest of the config, before --overwrite removes anything."""
    target = _foreign(tmp_path / "out")
    (target / MARKER).write_text("{}\n")  # even a zoo run's directory is left alone by a failing run
    (target / FILES).write_text("config.yaml\n")
    before = _snapshot(target)
    config = _config_file(tmp_path, tiny_run("dpo", target, steps=1))
    assert cli.main(["train", str(config), override, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert override.split("=")[0] in err and "Traceback" not in err
    assert _snapshot(target) == before


def test_misspelt_accelerator_and_strategy_are_named_with_a_suggestion(tmp_path, tiny_run):
    for override, hint in (("train.accelerator=cpuu", "did you mean 'cpu'"), ("train.strategy=dpp", "did you mean 'ddp'")):
        with pytest.raises(ConfigError, match=hint):
            train(load_config(raw=tiny_run("dpo", tmp_path / "out", steps=1), overrides=[override]))
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_an_accelerator_this_machine_lacks_is_a_config_error(tmp_path, tiny_run):
    with pytest.raises(ConfigError, match=r"Lightning cannot run with train.accelerator = 'cuda'"):
        train(load_config(raw=tiny_run("dpo", tmp_path / "out", steps=1), overrides=["train.accelerator=cuda"]))
    assert not (tmp_path / "out").exists()


def test_overwrite_refuses_a_directory_no_zoo_run_wrote(tmp_path, tiny_run, capsys):
    target = _foreign(tmp_path / "out")
    before = _snapshot(target)
    config = _config_file(tmp_path, tiny_run("dpo", target, steps=1))
    assert cli.main(["train", str(config), "--overwrite"]) == 2
    assert f"no {MARKER} marker" in capsys.readouterr().err
    assert _snapshot(target) == before


def test_overwrite_of_a_run_removes_only_what_the_run_wrote(tmp_path, tiny_run):
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("sft", run, steps=2, train={"checkpoint_every_n_steps": 1})))
    assert (run / MARKER).is_file() and (run / "checkpoints" / "last.ckpt").exists()
    (run / "notes.txt").write_text("my notes")
    (run / "logs" / "extra").mkdir()
    train(load_config(raw=tiny_run("sft", run, steps=1)), overwrite=True)
    assert (run / "notes.txt").read_text() == "my notes"
    assert not (run / "checkpoints").exists()
    assert not (run / "logs" / "extra").exists() and (run / "logs" / "metrics.csv").exists()
    assert (run / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("where", ["home", "root", "cwd", "above_cwd"])
def test_home_root_and_current_directory_are_refused_outright(tmp_path, monkeypatch, where):
    home = tmp_path / "home"
    work = home / "project"
    work.mkdir(parents=True)
    (work / "precious.txt").write_text("keep")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    target = {"home": "~", "root": "/", "cwd": ".", "above_cwd": str(home)}[where]
    for flags in ({"overwrite": True, "resume": False}, {"overwrite": False, "resume": True}):
        with pytest.raises(ConfigError, match="Choose a directory of its own"):
            check_output_dir(resolve_output_dir(target), **flags)
    assert (work / "precious.txt").read_text() == "keep"


def test_output_dir_expands_home_and_refuses_empty(tmp_path, monkeypatch, tiny_run):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert resolve_output_dir("~/x") == tmp_path / "x"
    for empty in ("", "   "):
        with pytest.raises(ConfigError, match="output_dir = ''"):
            train(load_config(raw=tiny_run("sft", empty, steps=1)))
    result = train(load_config(raw=tiny_run("sft", "~/runs/x", steps=1)))
    assert result.output_dir == tmp_path / "runs" / "x" and (tmp_path / "runs" / "x" / "model").is_dir()
    assert not (tmp_path / "~").exists()


def test_output_dir_is_created_only_after_the_data_is_checked(tmp_path, tiny_run):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p"}\n')
    with pytest.raises(Exception, match="row 1"):
        train(load_config(raw=tiny_run("sft", tmp_path / "a" / "b", steps=1, data={"train": str(bad)})))
    assert not (tmp_path / "a").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_read_only_output_dir_with_overwrite_is_refused(tmp_path, tiny_run):
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("sft", run, steps=1)))
    os.chmod(run, 0o555)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            train(load_config(raw=tiny_run("sft", run, steps=1)), overwrite=True)
    finally:
        os.chmod(run, 0o755)


def test_read_only_entry_is_refused_before_anything_is_removed(tmp_path, tiny_run, monkeypatch):
    """What --overwrite would replace must be writable; checked (here: os.access says no) before removing."""
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("sft", run, steps=1, train={"checkpoint_every_n_steps": 1})))
    before = _snapshot(run)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p).name == "model" else real_access(p, mode))
    with pytest.raises(ConfigError, match="model' is not writable"):
        train(load_config(raw=tiny_run("sft", run, steps=1)), overwrite=True)
    assert _snapshot(run) == before


_HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from zoo.run_dir import RunLock
    RunLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    time.sleep(600)
""")


def test_a_second_run_into_a_locked_directory_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path, tiny_run,
                                                                                                capsys):
    run = tmp_path / "run"
    raw = tiny_run("sft", run, steps=1)
    train(load_config(raw=raw))
    before = _snapshot(run)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = _config_file(tmp_path, raw)
        assert cli.main(["train", str(config), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert "is in use by another zoo run" in err
        assert _snapshot(run) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released the killed holder's lock: the next run goes ahead.
    assert cli.main(["train", str(config), "--overwrite"]) == 0


def test_two_concurrent_runs_into_one_directory(tmp_path, tiny_run):
    """A real `zoo train` holds the lock while it trains; a second one started meanwhile is refused."""
    run = tmp_path / "run"
    first_cfg = tmp_path / "first.yaml"
    first_cfg.write_text(yaml.safe_dump(tiny_run("sft", run, steps=400, train={"checkpoint_every_n_steps": 1})))
    first = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", str(first_cfg)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600  # a guard against hanging, not a timing assertion
        while first.poll() is None and not (run / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        second = subprocess.run([sys.executable, "-m", "zoo.cli", "train", str(first_cfg), "--resume"],
                                capture_output=True, text=True)
        assert second.returncode == 2 and "is in use by another zoo run" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def test_run_lock_is_reentrant_free_and_released(tmp_path):
    (tmp_path / MARKER).write_text("{}\n")
    lock = RunLock(tmp_path)
    with lock:
        assert lock.held
        with pytest.raises(ConfigError, match="in use"):
            RunLock(tmp_path).acquire()  # a second descriptor, even in this process, is refused
    assert not lock.held
    with RunLock(tmp_path):
        pass


def test_disk_full_names_the_file_and_keeps_the_earlier_checkpoints(tmp_path, tiny_run, monkeypatch, capsys):
    import errno

    run = tmp_path / "run"
    real_replace = os.replace

    def full_at_step_two(src, dst, *args, **kwargs):
        if str(dst).endswith("step-2.ckpt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_at_step_two)
    config = _config_file(tmp_path, tiny_run("dpo", run, steps=3, train={"checkpoint_every_n_steps": 1}))
    assert cli.main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"cannot write '{run / 'checkpoints' / 'step-2.ckpt'}': No space left on device" in err
    assert "earlier checkpoints included) are intact" in err and "step 1) is kept" in err and "--resume" in err
    monkeypatch.setattr(os, "replace", real_replace)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert cli.main(["train", str(config), "--resume"]) == 0  # the kept checkpoint continues the run
