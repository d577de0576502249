"""Checkpoint files that survive a crash and cannot run code when read.

* Every file is written atomically: to a temporary file in the same directory, flushed and
  fsynced, then renamed over the target with :func:`os.replace`. A run killed mid-write leaves
  the previous checkpoint intact (and at worst a ``.*.tmp`` file, removed on the next resume).
* A checkpoint whose weights are not all finite is never written (:class:`NonFiniteWeightsError`).
* Checkpoints hold only tensors and plain Python values, so they are read back with
  ``torch.load(weights_only=True)``: loading one cannot run code.

Which checkpoint a run resumes from, and what else a resume restores, is :mod:`zoo.resume`.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zoo.errors import ConfigError, PluginError, ZooError
from zoo.integrity import checksum_path, checksum_problem, sha256_bytes
from zoo.run_files import record, recorded
from zoo.signals import deferred

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"

_STEP_FILE = re.compile(r"step-(?:step=)?(\d+)\.ckpt$")


def step_of(path: str | Path) -> int:
    """The step in a ``step-N.ckpt`` file name, or -1 for any other name."""
    match = _STEP_FILE.search(Path(path).name)
    return int(match.group(1)) if match else -1


class NonFiniteWeightsError(ZooError):
    """Weights about to be saved contain NaN or inf."""


class WriteError(ZooError):
    """A file could not be written (disk full, read-only file system, permissions)."""


def write_error(path: str | Path, exc: OSError) -> WriteError:
    reason = exc.strerror or str(exc)
    return WriteError(f"cannot write {str(path)!r}: {reason}. The file it would have replaced, if any, and every "
                      f"file written before it (earlier checkpoints included) are intact.")


# ----- atomic writes ------------------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is flushed (POSIX).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def make_readable(*paths: str | Path) -> None:
    """Give files the mode the umask allows (safetensors writes 0600, hiding a shared cache or model)."""
    mode = _file_mode()
    for path in paths:
        path = Path(path)
        for file in (path.rglob("*") if path.is_dir() else [path]):
            if file.is_file() and not file.is_symlink():
                with contextlib.suppress(OSError):
                    os.chmod(file, mode)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode())  # mkstemp makes it private; the result should look like any other file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Save ``obj`` atomically, then its SHA-256 beside it (``PATH.sha256``, see :mod:`zoo.integrity`)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    path = Path(path)
    # In a run directory the pair is listed as the run's own before it exists (see zoo.run_files).
    record(path.parent.parent, [path, checksum_path(path)])
    with deferred():  # a SIGTERM in between would leave the new checkpoint beside its old checksum
        atomic_write_bytes(path, data)
        atomic_write_text(checksum_path(path), f"{sha256_bytes(data)}  {path.name}\n")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that a killed :func:`atomic_write_bytes` left behind."""
    removed = []
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


# ----- finite weights -----------------------------------------------------------------------------


def non_finite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``state`` that hold NaN or inf."""
    return [name for name, value in state.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()]


def require_finite(state: Mapping[str, Any], what: str) -> None:
    bad = non_finite_tensors(state)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteWeightsError(
            f"refusing to write {what}: the weights {shown} contain NaN or inf. Files written earlier are "
            f"unchanged. Lower train.learning_rate or check the data.")


# Exact types: a NumPy float is a float subclass, yet weights_only loading refuses it.
_PLAIN_LEAVES = (str, int, float, bool, bytes, type(None), torch.Size, torch.dtype, torch.device)


def first_non_plain(value: Any, where: str = "") -> tuple[str, type] | None:
    """The key path and type of the first value ``torch.load(weights_only=True)`` would refuse, or None."""
    if type(value) in _PLAIN_LEAVES or isinstance(value, torch.Tensor):
        return None
    if isinstance(value, dict):
        items = ((f"{where}.{key}" if where else str(key), item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", item) for i, item in enumerate(value))
    else:
        return where, type(value)
    for path, item in items:
        found = first_non_plain(item, path)
        if found is not None:
            return found
    return None


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint that also restores its bookkeeping in a moved or copied run directory.

    Lightning keeps ``last_model_path`` and the top-k list only when the checkpoint directory has
    the same path as when they were saved; otherwise it forgets which files it wrote and writes
    ``last-v1.ckpt`` beside ``last.ckpt``. Here the saved paths are moved to the current directory.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved, current = state_dict.get("dirpath"), self.dirpath
        if saved and current and saved != current:
            def moved(value: Any) -> Any:
                if isinstance(value, str) and value.startswith(saved + os.sep):
                    return current + value[len(saved):]
                return value

            state_dict = {key: ({moved(k): v for k, v in value.items()} if isinstance(value, dict) else moved(value))
                          for key, value in state_dict.items()}
            state_dict["dirpath"] = current
        super().load_state_dict(state_dict)

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        step = step_of(filepath)
        if step >= 0 and self.save_top_k > 0 and trainer.is_global_zero:
            self._prune(trainer, step)

    def _prune(self, trainer: Any, step: int) -> None:
        """Keep the newest ``save_top_k`` step checkpoints of this run, whatever Lightning's list says.

        Lightning prunes only the files its restored top-k list names, and only one per save: a
        run resumed from an older checkpoint, or with a smaller ``train.keep_last``, would keep
        every checkpoint from before the interruption. Only files the run listed as its own
        (:mod:`zoo.run_files`) are removed; those newer than ``step`` are left for it to overwrite.
        """
        directory = Path(self.dirpath)
        own = recorded(directory.parent)
        steps = {path: step_of(path) for path in directory.glob("*.ckpt")
                 if f"{directory.name}/{path.name}" in own and 0 <= step_of(path) <= step}
        keep = set(sorted(steps, key=steps.get, reverse=True)[:self.save_top_k])
        for path in steps:
            if path not in keep:
                self._remove_checkpoint(trainer, str(path))
        # Lightning's bookkeeping now names exactly the kept files, scored by their step (monitor="step").
        self.best_k_models = {str(path): torch.tensor(float(steps[path])) for path in keep}
        if len(self.best_k_models) >= self.save_top_k:
            self.kth_best_model_path = min(self.best_k_models, key=lambda p: float(self.best_k_models[p]))
            self.kth_value = self.best_k_models[self.kth_best_model_path]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic, finite weights only, loaded with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        require_finite(checkpoint.get("state_dict", {}), f"the checkpoint {path}")
        # Found now rather than when a crashed run is resumed and its checkpoint refuses to load.
        found = first_non_plain(checkpoint)
        if found is not None:
            where, kind = found
            error = PluginError if where.startswith("algorithm_state") else TypeError
            raise error(f"checkpoint entry {where} is a {kind.__module__}.{kind.__qualname__}; checkpoints may hold "
                        f"only tensors and plain Python values (Algorithm.state_dict() included)")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path)

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        with contextlib.suppress(FileNotFoundError):
            checksum_path(path).unlink()


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``, as a ZooError if that fails.

    Its bytes are checked against its ``.sha256`` side file first: a damaged checkpoint is refused.
    """
    if Path(path).exists():
        problem = checksum_problem(path)
        if problem is not None:
            raise ConfigError(f"checkpoint {str(path)!r} is damaged: {problem}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {str(path)!r} does not exist") from None
    except pickle.UnpicklingError:
        raise ConfigError(f"checkpoint {str(path)!r} holds objects other than tensors and plain values; it is not "
                          f"loaded, since loading it could run code (torch.load weights_only=True)") from None
    except Exception as exc:  # a truncated zip, a foreign file: all mean "not a usable checkpoint"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: {first_line})") from None
