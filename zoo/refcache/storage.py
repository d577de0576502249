"""The reference cache's storage: where files live, what a file's fingerprint holds, reading and writing.

See :mod:`zoo.refcache` for the design; :mod:`zoo.refcache.compute` fills the tables stored here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import Tensor

from zoo.cache_home import user_cache
from zoo.config import RunConfig
from zoo.data.tokenize import TokenizedExample
from zoo.errors import ZooError
from zoo.gguf import file_digest, gguf_file, is_gguf

log = logging.getLogger(__name__)

#: Bumped whenever the meaning of a stored value changes (how log-probs are masked or reduced).
FORMAT_VERSION = "1"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def cache_root() -> Path:
    """Where cache files live: ``$ZOO_CACHE_DIR/refcache`` or ``~/.cache/alignment-zoo/refcache``."""
    return user_cache("refcache")


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
    import torch

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
        import torch

        missing = [example_id for example_id in example_ids if example_id not in self.rows]
        if missing:
            raise ZooError(f"the reference log-probs hold no row for {len(missing)} example(s) of this batch "
                           f"(first: {missing[0]!r}; the table holds {len(self.rows)}): they were computed for "
                           "other examples than training draws; set train.reference_cache: off to compute "
                           "them on every batch instead")
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
        import torch
        from safetensors.torch import save_file

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
            from zoo.checkpointing import make_readable  # Lightning: not for `zoo cache ls`

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
    import torch
    from safetensors import safe_open

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
    from safetensors import safe_open

    root = root or cache_root()
    out = []
    for path in sorted(root.glob("*.safetensors")) if root.exists() else []:
        entry: dict[str, Any] = {"path": str(path), "key": path.stem, "bytes": path.stat().st_size}
        try:
            # numpy, not torch: only the header and a shape are read, and listing stays light
            with safe_open(str(path), framework="numpy") as handle:
                metadata = handle.metadata() or {}
                entry["examples"] = handle.get_slice("counts").get_shape()[0]
            stored = json.loads(metadata["fingerprint"])
            entry.update(reference=stored.get("reference"), created=metadata.get("created"),
                         max_length=stored.get("max_length"), precision=stored.get("precision"))
        except Exception as exc:
            entry["error"] = f"unreadable ({type(exc).__name__})"
        out.append(entry)
    return out
