"""Content checks for what a run reads back: checkpoint checksums and the training data's fingerprint.

* Every checkpoint ``NAME.ckpt`` gets a side file ``NAME.ckpt.sha256`` holding the SHA-256 of its
  bytes, written atomically right after it. Reading a checkpoint whose bytes do not match is an
  error naming the file (a resume then falls back to an older checkpoint); a checkpoint without
  a side file (from an older version) is read with a warning.
* :func:`data_fingerprint` hashes the tokenized training and held-out examples (token ids and
  scores, in order). It is stored in ``metrics.json`` when a run starts; a resume whose data
  differs is refused, since it would continue the run on other data than it started with.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".sha256"


def checksum_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_problem(path: str | Path) -> str | None:
    """Why ``path`` fails its checksum, or None when it matches (or has no side file: then a warning)."""
    side = checksum_path(path)
    try:
        expected = side.read_text(encoding="ascii").split()[0]
    except FileNotFoundError:
        log.warning("checkpoint %s has no %s checksum file; it is read without a content check", path, SUFFIX)
        return None
    except (OSError, UnicodeDecodeError, IndexError):
        return f"its checksum file {side.name} is unreadable"
    actual = sha256_file(path)
    if actual != expected:
        return f"its content does not match {side.name} (SHA-256 {actual[:12]}... instead of {expected[:12]}...)"
    return None


def data_fingerprint(examples: Iterable[Any]) -> str:
    """SHA-256 over the examples' token ids and scores, in order (paths and row numbers do not count)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(repr((example.prompt_ids, example.response_ids, example.scores)).encode())
        digest.update(b"\n")
    return digest.hexdigest()
