"""Files the user owns: never adopted by --resume, never removed by --overwrite; a failed final save, a
signal between a checkpoint and its checksum, and pruning after a resume leave a consistent run folder."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml

from zoo import cli
from zoo.checkpointing import atomic_torch_save
from zoo.config import load_config
from zoo.integrity import checksum_problem
from zoo.run_dir import MARKER
from zoo.run_files import FILES
from zoo.signals import Stop, stop_on_signals
from zoo.training_guard import train


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_resume_never_adopts_a_folder_zoo_did_not_write(tmp_path, tiny_run, capsys):
    """The issue's case: a folder with checkpoints/mine.pt and a config.yaml of the user's own."""
    target = tmp_path / "o3"
    (target / "checkpoints").mkdir(parents=True)
    (target / "checkpoints" / "mine.pt").write_text("mine\n")
    (target / "config.yaml").write_text("algorithm: x\n")
    before = _snapshot(target)
    config = _write(tmp_path / "run.yaml", tiny_run("dpo", target, steps=2))
    assert cli.main(["train", str(config), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "was not written by a zoo run" in err and "--resume will not adopt" in err and "Traceback" not in err
    assert _snapshot(target) == before and not (target / MARKER).exists()


def test_resume_auto_never_replaces_a_config_kept_in_its_own_output_folder(tmp_path, tiny_run, capsys):
    exp = tmp_path / "exp1"
    exp.mkdir()
    raw = tiny_run("sft", exp, steps=1, resume="auto")
    text = "# my experiment: keep these comments\n" + yaml.safe_dump(raw)
    (exp / "config.yaml").write_text(text)
    assert cli.main(["train", str(exp / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert "keep your own configs in another folder" in err
    assert (exp / "config.yaml").read_text() == text and sorted(os.listdir(exp)) == ["config.yaml"]


def test_overwrite_removes_only_the_files_the_run_listed(tmp_path, tiny_run):
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("sft", run, steps=2, train={"checkpoint_every_n_steps": 1})))
    listed = set((run / FILES).read_text().split())
    assert {"config.yaml", "metrics.json", "logs/metrics.csv", "checkpoints/last.ckpt", "checkpoints/step-2.ckpt",
            "checkpoints/step-2.ckpt.sha256", "model/model.safetensors", "model/config.json"} <= listed
    (run / "checkpoints" / "mine.pt").write_bytes(b"someone's weights")
    (run / "model" / "extra").mkdir()
    (run / "model" / "extra" / "user.txt").write_text("notes")
    (run / "logs" / "empty").mkdir()
    train(load_config(raw=tiny_run("sft", run, steps=1)), overwrite=True)
    assert (run / "checkpoints" / "mine.pt").read_bytes() == b"someone's weights"
    assert (run / "model" / "extra" / "user.txt").read_text() == "notes"
    assert sorted(os.listdir(run / "checkpoints")) == ["mine.pt"]  # every checkpoint of the run is gone
    assert not (run / "logs" / "empty").exists() and (run / "model" / "model.safetensors").exists()
    assert "checkpoints/last.ckpt" not in (run / FILES).read_text().split()


def test_overwrite_of_a_run_folder_without_a_file_list_is_refused(tmp_path, tiny_run, capsys):
    """A folder from a version that kept no list: its files cannot be told from the user's, so nothing goes."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "mine.pt").write_text("mine")
    (run / MARKER).write_text("{}\n")
    config = _write(tmp_path / "run.yaml", tiny_run("sft", run, steps=1))
    assert cli.main(["train", str(config), "--overwrite"]) == 2
    assert "kept no list of its files" in capsys.readouterr().err
    assert (run / "checkpoints" / "mine.pt").read_text() == "mine"


def test_a_full_disk_during_the_final_save_keeps_a_consistent_run_that_resumes(tmp_path, tiny_run, monkeypatch,
                                                                                capsys):
    from safetensors import SafetensorError

    import zoo.run

    run = tmp_path / "run"
    config = _write(tmp_path / "run.yaml", tiny_run("dpo", run, steps=2, train={"checkpoint_every_n_steps": 1}))
    real_save = zoo.run.save_policy

    def full_disk(policy, directory):
        (Path(directory) / "model.safetensors").write_bytes(b"\0" * 64)  # the part written before the disk filled
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(zoo.run, "save_policy", full_disk)
    assert cli.main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot write the trained model" in err and "StorageFull" in err
    assert "step 2) is kept" in err and "--resume" in err
    assert not (run / "model").exists() and not list(run.glob(".model.*"))
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "failed" and summary["failed_at"] == "saving the model"
    monkeypatch.setattr(zoo.run, "save_policy", real_save)
    assert cli.main(["train", str(config), "--resume"]) == 0
    assert (run / "model" / "model.safetensors").stat().st_size > 1000
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"


def test_a_signal_between_a_checkpoint_and_its_checksum_waits_for_the_checksum(tmp_path, monkeypatch):
    """SIGTERM after the new last.ckpt is in place but before its .sha256: the pair is finished, then the run stops."""
    import zoo.checkpointing

    path = tmp_path / "last.ckpt"
    atomic_torch_save({"w": torch.zeros(2)}, path)
    real = zoo.checkpointing.atomic_write_bytes

    def then_signal(target, data):
        real(target, data)
        if Path(target).suffix == ".ckpt":
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(zoo.checkpointing, "atomic_write_bytes", then_signal)
    with pytest.raises(Stop) as stopped, stop_on_signals():
        atomic_torch_save({"w": torch.ones(2)}, path)
    assert stopped.value.signum == signal.SIGTERM
    assert checksum_problem(path) is None
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))


def test_checkpoints_from_before_a_resume_are_pruned(tmp_path, tiny_run):
    """Resumed with a smaller train.keep_last, the run keeps only its newest checkpoints, old ones included."""
    run = tmp_path / "run"
    raw = tiny_run("sft", run, steps=3, train={"checkpoint_every_n_steps": 1, "keep_last": 3})
    train(load_config(raw=raw))
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*.ckpt")) == [f"step-{s}.ckpt" for s in (1, 2, 3)]
    (run / "checkpoints" / "step-9.ckpt.user").write_text("mine")
    train(load_config(raw=raw, overrides=["train.max_steps=5", "train.keep_last=1"]), resume=True)
    names = sorted(os.listdir(run / "checkpoints"))
    assert names == ["last.ckpt", "last.ckpt.sha256", "step-5.ckpt", "step-5.ckpt.sha256", "step-9.ckpt.user"]
