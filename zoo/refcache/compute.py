"""Computing reference log-probs for the cache, on the device and at the precision the Trainer trains with.

:func:`reference_logps_for_run` is what a run calls (:func:`zoo.run.build_run`): it reads the
run's cache file (:mod:`zoo.refcache.storage`), computes the missing rows with the reference
:func:`zoo.reference.reference_model` chooses, stores them, and returns the table the DataModule
attaches to every batch (:meth:`zoo.data.datamodule.AlignmentDataModule.attach_reference_cache`).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from zoo.allocator import release_free_memory
from zoo.config import RunConfig
from zoo.data.collate import Collator
from zoo.data.tokenize import TokenizedExample
from zoo.errors import ConfigError
from zoo.forward import batch_logprobs
from zoo.progress import Progress
from zoo.refcache.storage import ReferenceCache, ReferenceTable, fingerprint

log = logging.getLogger(__name__)


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
        release_free_memory()  # the pass's activations, before training allocates its own (zoo.allocator)
    rows: dict[str, Tensor] = {}
    for chunk, sums in results:  # outside inference mode: ordinary tensors that autograd may save
        for i, example in enumerate(chunk):
            rows[example.id] = sums[i, : max(1, len(example.response_ids))].clone()
    return rows


def precompute_setting(trainer: Any) -> tuple[torch.device, Any]:
    """(device, Lightning precision plugin) of the one-off pass: the Trainer's own, so the cached
    values are those its training steps would compute; without a Trainer, the CPU at full precision."""
    if trainer is None:
        from lightning.pytorch.plugins.precision import Precision

        return torch.device("cpu"), Precision()
    return trainer.strategy.root_device, trainer.precision_plugin


def reference_logps_for_run(config: RunConfig, algorithm: Any, tokenizer: Any,
                            examples: list[TokenizedExample], collator: Collator,
                            policy: nn.Module, *, trainer: Any = None) -> ReferenceTable | None:
    """The cached reference log-probs of ``examples``, computing and storing missing ones.

    Missing rows are computed on ``trainer``'s device and at its precision (:func:`precompute_setting`).
    Returns None when the cache does not apply (``train.reference_cache: off``, or an algorithm
    that scores responses it generates online); the caller then loads the reference model.
    """
    mode = config.train.reference_cache
    if mode == "off" or not algorithm.needs_reference or algorithm.generates_online:
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
    from zoo.reference import reference_model
    from zoo.writable import check_writable_dir

    # Checked before the log-probs are computed, not when they are stored.
    check_writable_dir(cache.path.parent, "the reference cache ($ZOO_CACHE_DIR/refcache)")
    device, plugin = precompute_setting(trainer)
    model, loaded = reference_model(config, policy, tokenizer, copy_policy=False)
    if loaded:  # a hub reference is in the local hub cache only now, with its resolved commit
        cache.fingerprint = fingerprint(config, tokenizer)
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
