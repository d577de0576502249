"""Decoding steps on CPU with weights pre-packed for oneDNN (opt-in: ``Sampling.packed_weights``).

A decoding step multiplies a handful of rows (one per sequence still generating) by every weight
of the model. The default CPU matmul (MKL's ``sgemm``, which ``nn.Linear`` calls) re-arranges
its operands into its kernel's layout on every call, which a handful of rows cannot amortise.
oneDNN can arrange a weight once for a given row count
(``torch.ops.mkldnn._reorder_linear_weight``, what ``torch.compile``'s freezing pass uses for CPU
linears) and reuse it: measured on one thread at
8 rows, a 576 × 1,536 MLP projection runs 1.7× faster and SmolLM2's 576 × 49,152 LM head 2.8×;
below about half a million weights (576 × 576, 576 × 192) and at one row the packed call is
slower, so those layers and steps keep the default.

:func:`packed_linears` packs, for the duration of a ``with`` block, every float32 CPU
``nn.Linear`` of at least :data:`MIN_WEIGHTS` weights (a peft LoRA layer's base layer included;
its adapter keeps the default), and routes each call with 2 to :data:`MAX_ROWS` rows through the
packed weight. A packed weight is kept with its layer and reused while the weight is unchanged
(same storage, same in-place version counter): a frozen base model is packed once, a weight the
optimiser updated is packed again on the next decode.

The results equal the default's up to float32 rounding (summation order), not bit for bit, so a
sampled token can differ where two tokens' probabilities sit within rounding of a random draw's
threshold: the samples are draws of the same distribution, not the same draws. That is why it is
an opt-in setting rather than the default.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import weakref
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

#: Layers with fewer weights keep the default matmul (packing measured slower for them).
MIN_WEIGHTS = 1 << 19
#: Calls with more rows than this (a prefill) keep the default matmul.
MAX_ROWS = 64

#: layer → (storage address, version, row count packed for, packed weight).
_PACKED: weakref.WeakKeyDictionary[nn.Linear, tuple[int, int, int, Tensor]] = weakref.WeakKeyDictionary()


@functools.cache
def packing_available() -> bool:
    """Whether this torch build has oneDNN and its linear-weight packing ops."""
    try:
        return torch.backends.mkldnn.is_available() and callable(torch.ops.mkldnn._reorder_linear_weight) \
            and callable(torch.ops.mkldnn._linear_pointwise)
    except (AttributeError, RuntimeError):
        return False


def unpacked_reason(device: torch.device, decodable: bool) -> str | None:
    """Why ``packed_weights`` cannot apply to a model on ``device`` (None: it can)."""
    if device.type != "cpu":
        return f"it packs CPU weights and the model is on {device}"
    if not decodable:
        return "the model is decoded by transformers' generate, not by zoo's decoding loop"
    if not packing_available():
        return "this torch build has no oneDNN linear-weight packing"
    return None


#: The reasons already logged by :func:`warn_if_unpacked` (once per process each).
_WARNED: set[str] = set()


def warn_if_unpacked(device: torch.device, decodable: bool) -> None:
    """Log why ``packed_weights`` has no effect here, once per process and reason (it is checked at every rollout)."""
    reason = unpacked_reason(device, decodable)
    if reason is not None and reason not in _WARNED:
        _WARNED.add(reason)
        log.warning("packed_weights is on but has no effect here: %s", reason)


def packable(module: nn.Module) -> bool:
    """A float32 CPU ``nn.Linear`` big enough to gain, whose ``forward`` nothing else has replaced."""
    if not isinstance(module, nn.Linear) or "forward" in module.__dict__:
        return False
    weight = module.weight
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.numel() >= MIN_WEIGHTS


def _packed_weight(module: nn.Linear, rows: int) -> Tensor:
    weight = module.weight
    key = (weight.data_ptr(), weight._version, rows)
    cached = _PACKED.get(module)
    if cached is not None and cached[:3] == key:
        return cached[3]
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    _PACKED[module] = (*key, packed)
    return packed


def _forward(module: nn.Linear, packed: Tensor, x: Tensor) -> Tensor:
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    if 2 <= rows <= MAX_ROWS and x.dtype == torch.float32 and not torch.is_grad_enabled():
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, module.bias, "none", [], "")
    return F.linear(x, module.weight, module.bias)


@contextlib.contextmanager
def packed_linears(model: nn.Module, rows: int) -> Iterator[int]:
    """Route ``model``'s big CPU linears through oneDNN-packed weights inside the block (see the
    module docstring); ``rows`` is the row count to pack for. Yields how many layers were packed."""
    patched = []
    try:
        if packing_available():
            for module in model.modules():
                if packable(module):
                    module.forward = functools.partial(_forward, module, _packed_weight(module, max(rows, 1)))
                    patched.append(module)
        log.debug("decoding on packed weights: %d linear layers, packed for %d rows", len(patched), rows)
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
