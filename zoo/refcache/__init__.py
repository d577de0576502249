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

Two modules: :mod:`zoo.refcache.storage` (the slot and fingerprint of a run, the file format,
reading and writing) and :mod:`zoo.refcache.compute` (filling missing rows on the Trainer's
device and at its precision), imported on first use so that listing the cache (``zoo cache ls``)
runs no model code.
"""
from zoo.lazy import lazy_exports
from zoo.refcache.storage import (FORMAT_VERSION, ReferenceCache, ReferenceTable, cache_root, describe_cache_files,
                                  fingerprint, read_cache_file, slot_fields, tokenizer_identity, values_checksum,
                                  weights_identity)

__getattr__, __dir__ = lazy_exports(globals(), {
    "zoo.refcache.compute": ("collator_group_size", "compute_reference_logps", "fill_batches",
                             "reference_logps_for_run"),
})

__all__ = [
    "FORMAT_VERSION", "ReferenceCache", "ReferenceTable", "cache_root", "collator_group_size",
    "compute_reference_logps", "describe_cache_files", "fill_batches", "fingerprint", "read_cache_file",
    "reference_logps_for_run", "slot_fields", "tokenizer_identity", "values_checksum", "weights_identity",
]
