"""Resume checks content: checkpoint checksums, the data fingerprint, reference-cache values; moved runs resume."""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from zoo.checkpointing import atomic_torch_save, load_checkpoint
from zoo.config import load_config
from zoo.errors import ConfigError
from zoo.integrity import checksum_path
from zoo.refcache import ReferenceCache, ReferenceTable, cache_root
from zoo.resume import find_resume_point
from zoo.training_guard import train


def _flip_a_byte_in_the_weights(path: Path) -> None:
    """Damage a byte inside the largest tensor's data, where torch.load does not notice."""
    data = bytearray(path.read_bytes())
    checkpoint = torch.load(path, weights_only=True)
    weights = max(checkpoint["state_dict"].values(), key=lambda t: t.numel())
    needle = weights.contiguous().numpy().tobytes()[:64]
    at = bytes(data).index(needle) + 17
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_bit_flip_in_a_checkpoint_is_caught_and_the_resume_falls_back(tmp_path, tiny_run, caplog):
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("dpo", run, steps=3, train={"checkpoint_every_n_steps": 1, "keep_last": 3})))
    last = run / "checkpoints" / "last.ckpt"
    assert checksum_path(last).read_text().split()[0]
    _flip_a_byte_in_the_weights(last)
    torch.load(last, weights_only=True)  # the damage itself is invisible to torch.load
    with pytest.raises(ConfigError, match=r"last.ckpt' is damaged: its content does not match last.ckpt.sha256"):
        load_checkpoint(last)
    with caplog.at_level(logging.WARNING):
        point = find_resume_point(run)
    assert point.path.name == "step-3.ckpt" and "is damaged" in caplog.text


def test_checksum_files_follow_their_checkpoints(tmp_path, tiny_run):
    run = tmp_path / "run"
    train(load_config(raw=tiny_run("dpo", run, steps=4, train={"checkpoint_every_n_steps": 1, "keep_last": 2})))
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.ckpt", "last.ckpt.sha256", "step-3.ckpt", "step-3.ckpt.sha256",
                     "step-4.ckpt", "step-4.ckpt.sha256"]  # pruned checkpoints take theirs along


def test_a_checkpoint_without_a_checksum_file_loads_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.ckpt"
    atomic_torch_save({"global_step": 1}, path)
    checksum_path(path).unlink()
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path)["global_step"] == 1
    assert "no .sha256 checksum file" in caplog.text


def test_resume_with_changed_data_is_refused(tmp_path, tiny_run):
    rows = [{"prompt": f"question {i}", "chosen": f"good answer {i}", "rejected": f"bad {i}"} for i in range(12)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    raw = tiny_run("dpo", run, steps=2, data={"train": str(data)}, train={"checkpoint_every_n_steps": 1})
    train(load_config(raw=raw))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    rows[3]["chosen"] = "an edited answer"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw["train"]["max_steps"] = 3
    with pytest.raises(ConfigError, match="the data differs from the data the run started with"):
        train(load_config(raw=raw), resume=True)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    rows[3]["chosen"] = "good answer 3"  # restored: the run continues
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert train(load_config(raw=raw), resume=True).resumed_from == 2


def test_reference_cache_with_changed_values_is_recomputed(tmp_path, tiny_run, caplog):
    """The before-training DPO loss is ln 2 (policy = reference); a tampered cache would shift it."""
    raw = tiny_run("dpo", tmp_path / "first", steps=1)
    first = train(load_config(raw=raw))
    assert first.metrics_before["val/loss"] == pytest.approx(math.log(2), abs=1e-6)
    path = max(cache_root().glob("*.safetensors"), key=lambda p: p.stat().st_mtime_ns)  # the one just written
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    tensors["logps"] = tensors["logps"] + 0.5 * (torch.arange(len(tensors["logps"])) % 2)[:, None]
    save_file(tensors, str(path), metadata=metadata)
    with caplog.at_level(logging.WARNING):
        second = train(load_config(raw={**raw, "output_dir": str(tmp_path / "second")}))
    assert "do not match their checksum" in caplog.text
    assert second.metrics_before["val/loss"] == pytest.approx(math.log(2), abs=1e-6)


def test_cache_and_model_files_are_readable_by_others(tmp_path, tiny_run):
    previous = os.umask(0o022)
    try:
        run = tmp_path / "run"
        train(load_config(raw=tiny_run("dpo", run, steps=1)))
        cache = ReferenceCache(tmp_path / "cache" / "c.safetensors", {"x": 1})
        cache.save(ReferenceTable({"00" * 12: torch.tensor([-1.0, -2.0])}))
    finally:
        os.umask(previous)
    for path in (run / "model" / "model.safetensors", cache.path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_moved_run_directory_resumes_and_keeps_its_checkpoint_bookkeeping(tmp_path, tiny_run):
    raw = tiny_run("dpo", tmp_path / "here", steps=3, train={"checkpoint_every_n_steps": 1, "keep_last": 2})
    train(load_config(raw=raw))
    shutil.rmtree(tmp_path / "here" / "model")  # as if stopped after its last checkpoint
    shutil.move(tmp_path / "here", tmp_path / "there")
    raw.update(output_dir=str(tmp_path / "there"))
    raw["train"]["max_steps"] = 5
    assert train(load_config(raw=raw), resume=True).resumed_from == 3
    names = sorted(p.name for p in (tmp_path / "there" / "checkpoints").glob("*.ckpt"))
    assert names == ["last.ckpt", "step-4.ckpt", "step-5.ckpt"]  # no last-v1.ckpt, old ones pruned
    assert torch.load(tmp_path / "there" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5


def test_a_damaged_last_checkpoint_is_replaced_in_place(tmp_path, tiny_run):
    # Resumed from the first checkpoint, which knows of no last.ckpt yet: Lightning would write last-v1.ckpt.
    raw = tiny_run("dpo", tmp_path / "run", steps=1, train={"checkpoint_every_n_steps": 1, "keep_last": 3})
    train(load_config(raw=raw))
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    raw["train"]["max_steps"] = 2
    assert train(load_config(raw=raw), resume=True).resumed_from == 1
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last)["global_step"] == 2
    assert not list(last.parent.glob("last-v*.ckpt"))
