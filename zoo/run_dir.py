"""The output directory of a run: where it may be, what marks it as a run's, and one run at a time.

* :func:`resolve_output_dir` expands ``~`` and refuses an empty ``output_dir``.
* :func:`check_output_dir` decides, reading only, whether a run may write there: never into the
  file-system root, the home directory or the current directory (or a folder above them); into
  a non-empty directory only with ``--resume`` or ``--overwrite``; and ``--overwrite`` only over
  a directory that a zoo run wrote, recognised by its marker file ``.zoo-run``.
* :func:`clear_run` removes, for ``--overwrite``, only the files listed in the run's ``.zoo-files``
  (:mod:`zoo.run_files`); anything else a user put there, even inside ``checkpoints/``, stays.
  ``--resume`` likewise continues only a folder holding the marker: a folder zoo did not write is
  never adopted.
* :class:`RunLock` holds an exclusive ``flock`` on the marker for the whole run, so a second run
  into the same directory is refused. The kernel drops the lock when its process dies, even by
  SIGKILL, so a killed run never leaves a stale lock behind. The marker is written once and
  never replaced (a lock belongs to a file, and a replaced file would be a new, unlocked one).
* :func:`interrupted_error` and :func:`resume_hint` say, after a signal or a failed write, which
  checkpoint is left to continue the run from.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
from pathlib import Path

from zoo.checkpointing import atomic_write_text
from zoo.errors import ConfigError, ZooError
from zoo.resume import find_resume_point, read_summary
from zoo.run_files import FILES, MARKER, has_list, remove_recorded
from zoo.signals import RunInterrupted, signal_name
from zoo.writable import check_name_lengths

#: Where ``zoo train`` writes in its output directory; ``--overwrite`` removes only the listed files in them.
RUN_ENTRIES = ("checkpoints", "model", "logs", "metrics.json", "config.yaml")
_OWN = frozenset({MARKER, FILES})


def resolve_output_dir(value: str) -> Path:
    if not str(value).strip():
        raise ConfigError("output_dir = '': the output directory is empty; set output_dir=PATH "
                          "(e.g. output_dir=runs/my-run).")
    return Path(str(value)).expanduser()


def _protected(path: Path) -> str | None:
    """Why ``path`` may never be a run directory, or None."""
    resolved = path.resolve()
    home, cwd = Path.home().resolve(), Path.cwd().resolve()
    if resolved == Path(resolved.anchor):
        return "is the file-system root"
    if resolved == home:
        return "is your home directory"
    if resolved in home.parents:
        return "holds your home directory"
    if resolved == cwd:
        return "is the current directory"
    if resolved in cwd.parents:
        return "holds the current directory"
    return None


def is_run_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def contents(path: Path) -> set[str]:
    """The names in ``path`` other than the run's marker (empty if it does not exist)."""
    if not path.is_dir():
        return set()
    return {p.name for p in path.iterdir()} - _OWN


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor)


def check_output_dir(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse an output directory this run may not write to. Reads only: nothing is created."""
    shown = repr(str(path))
    check_name_lengths(path, "output_dir")
    try:
        path.resolve(strict=False)
        path.exists()
    except (OSError, RuntimeError) as exc:  # pathlib reports a symbolic-link loop as a RuntimeError
        reason = "it goes through a symbolic-link loop" if isinstance(exc, RuntimeError) or \
            exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise ConfigError(f"output_dir {shown} cannot be used: {reason}; choose another output_dir=PATH.") from None
    why = _protected(path)
    if why is not None:
        raise ConfigError(f"output_dir {shown} {why}; a run writes (and --overwrite removes) files there. "
                          f"Choose a directory of its own, e.g. output_dir=runs/my-run.")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output_dir {shown} is a file, not a directory; choose another output_dir=PATH.")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ConfigError(f"output_dir {shown} cannot be created (Not a directory: {str(existing)!r} is a file); "
                          f"choose another output_dir=PATH.")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created ({str(existing)!r} is not writable)"
        raise ConfigError(f"output_dir {shown} {what}; choose another output_dir=PATH.")
    if contents(path):
        if not (overwrite or resume):
            raise ConfigError(f"output_dir {shown} exists and is not empty; pass --overwrite to write into it, "
                              f"--resume to continue its run, or choose another output_dir=PATH.")
        if not is_run_dir(path):
            flag = "--resume" if resume else "--overwrite"
            mine = (" Its config.yaml is not a run's: a run writes its resolved config there, so keep your own "
                    "configs in another folder." if (path / "config.yaml").exists() else "")
            raise ConfigError(f"output_dir {shown} is not empty and was not written by a zoo run (it has no "
                              f"{MARKER} marker), so {flag} will not adopt or remove anything in it; choose another "
                              f"output_dir=PATH or empty it yourself.{mine}")
        if overwrite and not resume and not has_list(path):
            raise ConfigError(f"output_dir {shown} was written by an older alignment-zoo that kept no list of its "
                              f"files ({FILES}), so --overwrite cannot tell them from yours; empty it yourself or "
                              f"choose another output_dir=PATH.")
        for name in RUN_ENTRIES:
            entry = path / name
            if overwrite and entry.exists() and not os.access(entry, os.W_OK):
                raise ConfigError(f"output_dir {shown}: {str(entry)!r} is not writable, so --overwrite cannot "
                                  f"replace it; fix its permissions or choose another output_dir=PATH.")


def create_run_dir(path: Path) -> None:
    """Create the directory (if needed) and mark it as a zoo run's."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"output_dir {str(path)!r} cannot be created ({exc.strerror or exc}); "
                          f"choose another output_dir=PATH.") from None
    if is_run_dir(path):
        return
    from zoo.version import __version__

    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = json.dumps({"written_by": f"alignment-zoo {__version__}", "created": stamp}) + "\n"
    try:
        fd = os.open(path / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:  # another run created it a moment ago; the lock decides who goes on
        return
    except OSError as exc:
        raise ConfigError(f"output_dir {str(path)!r}: cannot write {MARKER} ({exc.strerror or exc}); "
                          f"choose another output_dir=PATH.") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    with open(path / FILES, "a", encoding="utf-8"):
        pass  # an empty list: the run has written nothing yet


def clear_run(path: Path) -> None:
    """Remove what an earlier zoo run wrote into ``path`` (``--overwrite``): the files its list names."""
    try:
        remove_recorded(path, [name for name in RUN_ENTRIES if "." not in name])
    except OSError as exc:
        where = exc.filename or path
        raise ConfigError(f"--overwrite could not remove {str(where)!r} ({exc.strerror or exc}); fix its "
                          f"permissions or choose another output_dir=PATH.") from None


class RunLock:
    """An exclusive lock on a run directory, held from the first write to the end of the run."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path / MARKER, os.O_RDONLY)
        except OSError as exc:
            raise ConfigError(f"output_dir {str(self.path)!r}: cannot open {MARKER} to lock the run directory "
                              f"({exc.strerror or exc}); choose another output_dir=PATH.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(f"output_dir {str(self.path)!r} is in use by another zoo run (it holds the lock on "
                              f"{MARKER}); wait for it to finish, or choose another output_dir=PATH.") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ----- what is left to continue from -------------------------------------------------------------

#: Errors of the file system a user can fix (space, quota, permissions), reported without a traceback.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def resume_hint(output_dir: Path) -> str:
    point = None
    with contextlib.suppress(ZooError, OSError):
        point = find_resume_point(output_dir)
    if point is None:
        return ""
    return (f" The newest checkpoint ({point.path.relative_to(output_dir)}, step {point.global_step}) is kept: once "
            f"the problem is fixed, continue with zoo train CONFIG --resume.")


def interrupted_error(output_dir: Path, signum: int, *, wrote: bool) -> RunInterrupted:
    """Record that the run was stopped and say what is left to continue it from."""
    summary = read_summary(output_dir) if wrote else {}
    point = None
    with contextlib.suppress(ZooError):
        point = find_resume_point(output_dir) if wrote else None
    if summary.get("status") == "running":
        summary["status"] = "interrupted"
        summary["interrupted_by"] = signal_name(signum)
        summary["last_checkpoint_step"] = point.global_step if point else None
        with contextlib.suppress(ZooError, OSError):  # a full disk must not hide the signal's report
            atomic_write_text(output_dir / "metrics.json", json.dumps(summary, indent=2))
    what = f"zoo train was stopped by {signal_name(signum)}"
    if point is not None:
        return RunInterrupted(f"{what}; its newest checkpoint ({point.path.relative_to(output_dir)}, step "
                              f"{point.global_step}) is kept in {str(output_dir)!r}.", signum=signum, resumable=True)
    if not wrote:
        return RunInterrupted(f"{what} before it wrote anything to {str(output_dir)!r}.", signum=signum,
                              resumable=False)
    return RunInterrupted(f"{what} before its first checkpoint, so there is nothing to continue from (set "
                          f"train.checkpoint_every_n_steps to make a run resumable); start it again with --overwrite.",
                          signum=signum, resumable=False)
