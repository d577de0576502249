"""The one list of packages whose versions the benchmark records, and the two records made from it.

* :func:`package_versions`: the numerical stack (and Python), part of every stage fingerprint
  (:func:`zoo.bench.cache.fingerprint`) and of results.json's ``packages``, which
  ``zoo bench --check`` compares with today's: a new version there can move a number.
* :func:`recorded_versions`: results.json's ``versions``, what results.md's header names
  (Python, the platform, the device and the packages marked ``reported``).
"""
from __future__ import annotations

import importlib.metadata as metadata
import platform
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple


class Package(NamedTuple):
    """A distribution whose version is recorded, and where."""

    name: str
    #: In every stage fingerprint and in results.json's ``packages`` (``zoo bench --check`` compares it).
    fingerprinted: bool
    #: In results.json's ``versions``.
    reported: bool


#: Every package whose version the benchmark records, once each.
PACKAGES = (
    Package("alignment-zoo", fingerprinted=False, reported=True),
    Package("torch", fingerprinted=True, reported=True),
    Package("transformers", fingerprinted=True, reported=True),
    Package("tokenizers", fingerprinted=True, reported=False),
    Package("lightning", fingerprinted=True, reported=True),
    Package("datasets", fingerprinted=False, reported=True),
    Package("numpy", fingerprinted=True, reported=True),
    Package("safetensors", fingerprinted=True, reported=False),
    Package("peft", fingerprinted=True, reported=True),
    Package("scipy", fingerprinted=False, reported=True),
)


def _installed(names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Python's version and every fingerprinted package's (the numerical stack)."""
    return {"python": platform.python_version(), **_installed(p.name for p in PACKAGES if p.fingerprinted)}


def recorded_versions() -> dict[str, str]:
    """results.json's ``versions``: Python, the platform, the device and every reported package."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"python": platform.python_version(), "platform": platform.platform(), "device": device,
            **_installed(p.name for p in PACKAGES if p.reported)}
