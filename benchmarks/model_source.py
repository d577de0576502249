"""The model a benchmark runs: a ``save_pretrained`` directory, a ``.gguf`` file, or ``smollm2``.

Both tools of a side-by-side benchmark load the model with ``from_pretrained(directory)``, so a
GGUF file (or the packaged SmolLM2-135M-Instruct, ``smollm2``) becomes zoo's converted model
directory (:func:`zoo.gguf.model_directory`: de-quantised once, cached, reused by later runs).
"""
from __future__ import annotations

from pathlib import Path


def model_directory(spec: str | Path) -> Path:
    """A directory ``from_pretrained`` loads: ``spec`` itself, or the converted directory of a GGUF model."""
    from zoo import gguf
    from zoo.errors import ConfigError

    if gguf.is_gguf(str(spec)):
        try:
            return gguf.model_directory(str(spec), key="--model-dir")
        except ConfigError as exc:
            raise SystemExit(str(exc)) from None
    path = Path(spec)
    if not path.is_dir():
        raise SystemExit(f"--model-dir {spec}: expected a save_pretrained directory, a .gguf file or 'smollm2'")
    return path
