"""The reference log-prob cache: reference sequence log-probs computed once, reused by every run.

Offline algorithms that declare ``needs_reference`` only ever use the frozen reference model's
per-sequence log-probs ``log π_ref(y|x)``, which depend on the reference weights and the token ids
and nothing the run trains. They are computed once, stored on disk, and attached to each batch
(``Batch.reference_logps``, ``[B, k]``); when the cache holds every train and eval example the
reference model is never loaded, which saves its memory and one forward pass per step.

Files live in ``$ZOO_CACHE_DIR/refcache/`` (default ``~/.cache/alignment-zoo/refcache/``), one
safetensors file per *slot*: the reference model's name or path, the tokenizer, the truncation and
scoring settings and the precision. Inside a slot, rows are keyed by the examples' content ids
(``TokenizedExample.id``, a hash of the prompt and response token ids), so runs and algorithms on
overlapping data share rows, and new examples are added to the same file. The file's metadata
holds the full *fingerprint*, the slot plus the identity of the weights (local directories: the
weight files' names, sizes and modification times and a hash of ``config.json``; hub models: the
resolved commit; the built-in tiny model: its recipe and the torch version that initialises it).
A fingerprint that does not match (say, a checkpoint overwritten in place) is recomputed with a
log line, an unreadable file with a warning; neither is ever used.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from zoo.config import RunConfig
from zoo.checkpointing import make_readable
from zoo.data.collate import Collator
from zoo.data.tokenize import TokenizedExample
from zoo.errors import ConfigError
from zoo.forward import batch_logprobs
from zoo.gguf import file_digest, gguf_file, is_gguf
from zoo.progress import Progress

log = logging.getLogger(__name__)

#: Bumped whenever the meaning of a stored value changes (how log-probs are masked or reduced).
FORMAT_VERSION = "1"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def cache_root() -> Path:
    """Where cache files live: ``$ZOO_CACHE_DIR/refcache`` or ``~/.cache/alignment-zoo/refcache``."""
    base = os.environ.get("ZOO_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "alignment-zoo") / "refcache"


def _digest(payload: Any, size: int = 16) -> str:
    return hashlib.blake2b(json.dumps(payload, sort_keys=True, default=str).encode(), digest_size=size).hexdigest()


def _file_sha(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


# ----- fingerprints ------------------------------------------------------------------------------


def tokenizer_identity(tokenizer: Any) -> str:
    """A hash of everything that maps text to ids: vocabulary, merges, normaliser, special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else sorted(tokenizer.get_vocab().items())
    return _digest([vocabulary, tokenizer.all_special_tokens, getattr(tokenizer, "chat_template", None)])


def weights_identity(config: RunConfig) -> dict[str, Any]:
    """What tells two reference weights apart without reading them (cheap, conservative)."""
    m = config.model
    name = m.reference or m.name
    if name == "tiny":
        # The tiny model is a seeded random init: same recipe + same torch RNG = same weights.
        return {"recipe": dataclasses.asdict(m.tiny), "torch": torch.__version__.split("+")[0]}
    if is_gguf(name):
        return {"gguf": file_digest(gguf_file(name, "model.reference" if m.reference else "model.name"))}
    path = Path(name)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
        config_file = path / "config.json"
        return {
            "files": [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files],
            "config": _file_sha(config_file) if config_file.exists() else None,
        }
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json", revision=m.revision)
    except Exception:  # an unusual hub id or cache layout: fall back to the revision alone
        cached = None
    if isinstance(cached, str):
        snapshot = Path(cached).parent
        return {"commit": snapshot.name, "config": _file_sha(Path(cached))}
    return {"revision": m.revision or "main"}


def slot_fields(config: RunConfig, tokenizer: Any) -> dict[str, Any]:
    """What selects the cache file: everything that changes the stored numbers, except the weights."""
    m, d = config.model, config.data
    name = m.reference or m.name
    return {
        "reference": str(Path(name).resolve()) if Path(name).exists() else name,
        "dtype": m.dtype,
        "precision": config.train.precision,
        "tokenizer": tokenizer_identity(tokenizer),
        "max_length": d.max_length,
        "max_prompt_length": d.max_prompt_length,
        "prompt_truncation": d.prompt_truncation,
        "train_on_prompt": d.train_on_prompt,
    }


def fingerprint(config: RunConfig, tokenizer: Any) -> dict[str, Any]:
    """The slot plus the weights' identity and the format version (in its JSON form, as stored)."""
    full = {"format": FORMAT_VERSION, **slot_fields(config, tokenizer), "weights": weights_identity(config)}
    return json.loads(json.dumps(full, sort_keys=True, default=str))


# ----- the in-memory table -----------------------------------------------------------------------


class ReferenceTable:
    """Reference sequence log-probs by example id; ``lookup`` builds a batch's ``[B, k]`` tensor."""

    def __init__(self, rows: Mapping[str, Tensor] | None = None):
        self.rows: dict[str, Tensor] = dict(rows or {})

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, example_id: str) -> bool:
        return example_id in self.rows

    def update(self, rows: Mapping[str, Tensor]) -> None:
        self.rows.update(rows)

    def missing(self, examples: Iterable[TokenizedExample]) -> list[TokenizedExample]:
        seen: set[str] = set()
        out = []
        for example in examples:
            example_id = example.id
            if example_id not in self.rows and example_id not in seen:
                seen.add(example_id)
                out.append(example)
        return out

    def lookup(self, example_ids: list[str], group_size: int) -> Tensor:
        """``[B, group_size]``; slots past an example's own responses (invalid slots) are 0."""
        out = torch.zeros((len(example_ids), group_size), dtype=torch.float32)
        for i, example_id in enumerate(example_ids):
            values = self.rows[example_id]
            out[i, : values.numel()] = values[:group_size]
        return out


# ----- the file ----------------------------------------------------------------------------------


class ReferenceCache:
    """One cache file and the fingerprint its contents must carry."""

    def __init__(self, path: Path, fingerprint: dict[str, Any]):
        self.path = path
        self.fingerprint = fingerprint

    @classmethod
    def for_run(cls, config: RunConfig, tokenizer: Any, root: Path | None = None) -> "ReferenceCache":
        slot = slot_fields(config, tokenizer)
        return cls((root or cache_root()) / f"{_digest(slot)}.safetensors", fingerprint(config, tokenizer))

    def load(self) -> ReferenceTable:
        """The stored rows, or an empty table when the file is absent, stale or unreadable."""
        if not self.path.exists():
            return ReferenceTable()
        try:
            stored, rows = read_cache_file(self.path)
        except Exception as exc:  # any damage: never trust a partial read
            log.warning("reference cache %s is unreadable (%s: %s); recomputing it", self.path,
                        type(exc).__name__, exc)
            return ReferenceTable()
        if stored != self.fingerprint:
            changed = sorted(k for k in set(stored) | set(self.fingerprint) if stored.get(k) != self.fingerprint.get(k))
            log.info("reference cache %s was written for a different reference (%s changed); recomputing it",
                     self.path, ", ".join(changed))
            return ReferenceTable()
        return ReferenceTable(rows)

    def save(self, table: ReferenceTable) -> None:
        """Write ``table`` atomically (a reader never sees a half-written file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ids = list(table.rows)
        width = max((v.numel() for v in table.rows.values()), default=1)
        logps = torch.zeros((len(ids), width), dtype=torch.float32)
        counts = torch.zeros(len(ids), dtype=torch.int32)
        for i, example_id in enumerate(ids):
            values = table.rows[example_id].float()
            logps[i, : values.numel()] = values
            counts[i] = values.numel()
        id_bytes = torch.tensor([list(bytes.fromhex(i)) for i in ids], dtype=torch.uint8) if ids else \
            torch.zeros((0, 12), dtype=torch.uint8)
        metadata = {"fingerprint": json.dumps(self.fingerprint, sort_keys=True), "format": FORMAT_VERSION,
                    "values_sha256": values_checksum(id_bytes, logps, counts),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "reference": str(self.fingerprint.get("reference"))}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide a shared cache from other users
        try:
            save_file({"example_ids": id_bytes, "logps": logps, "counts": counts}, tmp, metadata=metadata)
            make_readable(tmp)  # safetensors writes its file 0600 whatever the temporary's mode was
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def values_checksum(ids: Tensor, logps: Tensor, counts: Tensor) -> str:
    """SHA-256 of the stored tensors' bytes: a cache whose numbers were changed is recomputed, not used."""
    digest = hashlib.sha256()
    for tensor in (ids, logps, counts):
        digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def read_cache_file(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(fingerprint, rows) of a cache file; raises on any inconsistency."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        ids, logps, counts = (handle.get_tensor(k) for k in ("example_ids", "logps", "counts"))
    stored = json.loads(metadata["fingerprint"])
    expected = metadata.get("values_sha256")
    if expected is not None and values_checksum(ids, logps, counts) != expected:
        raise ValueError("the stored values do not match their checksum (the file was changed after it was written)")
    if ids.dtype != torch.uint8 or ids.ndim != 2 or logps.ndim != 2 or counts.ndim != 1 or \
            not (len(ids) == len(logps) == len(counts)):
        raise ValueError("tensor shapes do not agree")
    if bool((counts < 1).any()) or bool((counts > logps.shape[1]).any()):
        raise ValueError("response counts out of range")
    if not torch.isfinite(logps).all():
        raise ValueError("non-finite log-probs")
    rows = {bytes(row.tolist()).hex(): logps[i, : int(counts[i])].clone() for i, row in enumerate(ids)}
    return stored, rows


def describe_cache_files(root: Path | None = None) -> list[dict[str, Any]]:
    """One summary per file under the cache root (for ``zoo cache ls``)."""
    root = root or cache_root()
    out = []
    for path in sorted(root.glob("*.safetensors")) if root.exists() else []:
        entry: dict[str, Any] = {"path": str(path), "key": path.stem, "bytes": path.stat().st_size}
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                entry["examples"] = handle.get_slice("counts").get_shape()[0]
            stored = json.loads(metadata["fingerprint"])
            entry.update(reference=stored.get("reference"), created=metadata.get("created"),
                         max_length=stored.get("max_length"), precision=stored.get("precision"))
        except Exception as exc:
            entry["error"] = f"unreadable ({type(exc).__name__})"
        out.append(entry)
    return out


# ----- computing ---------------------------------------------------------------------------------


def collator_group_size(examples: list[TokenizedExample]) -> int:
    """The most responses of an example (rows per example in a padded batch)."""
    return max((max(1, len(e.response_ids)) for e in examples), default=1)


def _longest_row(example: TokenizedExample) -> int:
    return len(example.prompt_ids) + max((len(r) for r in example.response_ids), default=0)


def fill_batches(examples: list[TokenizedExample], batch_size: int, tokens: int) -> list[list[int]]:
    """Indices of ``examples`` in batches sorted by length, each ≤ ``tokens`` padded positions.

    A batch holds at least ``batch_size`` examples (the training batch, which fits by definition)
    and grows past it while its padded area, rows × the longest row, stays within ``tokens``.
    """
    order = sorted(range(len(examples)), key=lambda i: _longest_row(examples[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for index in order:
        k = max(1, len(examples[index].response_ids))
        area = (rows + k) * _longest_row(examples[index])  # sorted: this one is the longest so far
        if current and len(current) >= batch_size and area > tokens:
            batches.append(current)
            current, rows = [], 0
        current.append(index)
        rows += k
    if current:
        batches.append(current)
    return batches


def compute_reference_logps(model: nn.Module, examples: list[TokenizedExample], collator: Collator, batch_size: int,
                            device: torch.device | str = "cpu",
                            forward_context: Callable[[], AbstractContextManager] = nullcontext,
                            progress: Callable[[int], None] | None = None,
                            tokens: int | None = None) -> dict[str, Tensor]:
    """``{example id: [k] reference log-probs}`` for ``examples``, in length-sorted batches.

    The values are those the training loop's reference forward pass would produce
    (:func:`zoo.forward.batch_logprobs` over padded rows, under the same precision context, up
    to float rounding); the pass runs under ``torch.inference_mode`` in :func:`fill_batches`, whose
    sorting cuts the padding. A batch holds up to ``tokens`` padded positions (default: as many
    as ``batch_size`` of the longest examples), so many short examples share one forward pass,
    and no pass holds more positions than a training step's reference pass over its longest
    batch (which also keeps their activations; here nothing is kept between layers).
    ``progress`` is called with the number of examples finished after each batch.
    """
    if tokens is None:
        tokens = batch_size * max((max(1, len(e.response_ids)) * _longest_row(e) for e in examples), default=1)
    results: list[tuple[list[TokenizedExample], Tensor]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), forward_context():
            for indices in fill_batches(examples, batch_size, tokens):
                chunk = [examples[i] for i in indices]
                batch = collator.pad(chunk).to(device)
                out = batch_logprobs(model, batch)
                results.append((chunk, out.sum.float().cpu()))
                if progress is not None:
                    progress(len(chunk))
    finally:
        model.train(was_training)
    rows: dict[str, Tensor] = {}
    for chunk, sums in results:  # outside inference mode: ordinary tensors that autograd may save
        for i, example in enumerate(chunk):
            rows[example.id] = sums[i, : max(1, len(example.response_ids))].clone()
    return rows


def precision_plugin(precision: str, device_type: str) -> Any:
    """Lightning's precision plugin for ``train.precision``, so the one-off pass matches training's."""
    from lightning.pytorch.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision

    flag = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}.get(str(precision),
                                                                                       str(precision))
    if flag.endswith("-mixed"):
        return MixedPrecision(flag, device_type)
    if flag in ("bf16-true", "16-true"):
        return HalfPrecision(flag)
    if flag == "64-true":
        return DoublePrecision()
    return Precision()


def precompute_device(config: RunConfig) -> torch.device:
    """The device this process would train on (its local GPU, else the CPU)."""
    if str(config.train.accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def reference_logps_for_run(config: RunConfig, algorithm_cls: Any, tokenizer: Any,
                            examples: list[TokenizedExample], collator: Collator,
                            policy: nn.Module) -> ReferenceTable | None:
    """The cached reference log-probs of ``examples``, computing and storing missing ones.

    Returns None when the cache does not apply (``train.reference_cache: off``, or an algorithm
    that scores responses it generates online); the caller then loads the reference model.
    """
    mode = config.train.reference_cache
    if mode == "off" or not algorithm_cls.needs_reference or algorithm_cls.generates_online:
        return None
    cache = ReferenceCache.for_run(config, tokenizer)
    table = cache.load()
    missing = table.missing(examples)
    if not missing:
        log.info("reference log-probs of all %d examples read from %s; the reference model is not loaded",
                 len(examples), cache.path)
        return table
    if mode == "required":
        raise ConfigError(
            f"train.reference_cache = 'required', but the cache {cache.path} lacks {len(missing)} of the "
            f"{len(examples)} examples (reference, tokenizer, truncation or data differ from the run that filled "
            f"it). Run once with train.reference_cache=auto to compute them.")
    device = precompute_device(config)
    from zoo.reference import reference_model

    model, loaded = reference_model(config, policy, tokenizer, copy_policy=False)
    if loaded:  # a hub reference is in the local hub cache only now, with its resolved commit
        cache.fingerprint = fingerprint(config, tokenizer)
    plugin = precision_plugin(config.train.precision, device.type)
    model = plugin.convert_module(model).to(device)
    started = time.perf_counter()
    batch_size = config.train.eval_batch_size or config.train.batch_size
    with Progress("reference log-probs", len(missing), "examples") as bar:
        table.update(compute_reference_logps(model, missing, collator, batch_size, device, plugin.forward_context,
                                             progress=bar.advance,
                                             tokens=batch_size * collator_group_size(missing) * config.data.max_length))
    cache.save(table)
    log.info("reference log-probs: %d computed in %.1fs, %d reused; stored in %s", len(missing),
             time.perf_counter() - started, len(examples) - len(missing), cache.path)
    if loaded:
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return table
