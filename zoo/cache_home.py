"""Where the zoo's caches live on this machine: ``$ZOO_CACHE_DIR`` or ``~/.cache/alignment-zoo``."""
from __future__ import annotations

import os
from pathlib import Path


def user_cache(kind: str) -> Path:
    """The folder of one cache (``refcache``, ``gguf``...) under the zoo's cache home."""
    base = os.environ.get("ZOO_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "alignment-zoo") / kind
