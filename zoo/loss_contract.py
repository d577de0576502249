"""The loss contract, checked on every step: a plugin's broken loss is named, not a traceback.

:meth:`zoo.algorithm.Algorithm.loss` returns a :class:`zoo.batch.LossOutput` whose ``losses``
is a floating-point tensor of shape ``[B]`` (one loss per example of the batch) that carries a
gradient in training, and whose metrics are tensors of shape ``[B]`` or scalars. A loss of shape
``(B, 3)`` or a 0-dim one would otherwise train (averaged into something else) and save
silently. The checks read only shapes and flags, so they cost no device synchronisation.
NaN/inf values are not a contract breach: ``train.max_nonfinite_steps`` handles them.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from zoo.batch import LossOutput
from zoo.errors import PluginError


def loss_origin(algorithm: Any) -> tuple[str, bool]:
    """``algorithm 'NAME' of the plugin P (DIST VERSION)`` and whether that plugin is a built-in one."""
    from zoo.registry import get_registry

    registry = get_registry()
    entry = registry.entries("algorithms").get(getattr(algorithm, "name", ""))
    if entry is None:
        return f"algorithm {getattr(algorithm, 'name', type(algorithm).__name__)!r}", False
    plugin = registry.plugins.get(entry.plugin)
    where = f"{plugin.name} ({plugin.distribution} {plugin.version})" if plugin is not None else entry.plugin
    return f"algorithm {entry.name!r} of the plugin {where}", bool(plugin is not None and plugin.builtin)


def _origin(algorithm: Any) -> str:
    return loss_origin(algorithm)[0]


def check_gradient_path(algorithm: Any) -> None:
    """Called when the first backward left every trainable parameter without a gradient."""
    raise PluginError(f"{_origin(algorithm)} broke the loss contract: after the first backward pass no trainable "
                      f"parameter has a gradient. Its loss has no path back to the model (e.g. a fresh tensor made "
                      f"with requires_grad=True), so the run would save the initial weights unchanged.")


def _shape(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"


def check_loss_output(out: Any, batch_size: int, algorithm: Any, *, training: bool) -> None:
    """Raise a PluginError naming the algorithm, its plugin and the rule ``out`` breaks."""
    problem = None
    if not isinstance(out, LossOutput):
        problem = f"loss() must return a zoo.batch.LossOutput, got {type(out).__name__}"
    elif not isinstance(out.losses, Tensor):
        problem = f"LossOutput.losses must be a tensor, got {type(out.losses).__name__}"
    elif tuple(out.losses.shape) != (batch_size,):
        problem = (f"LossOutput.losses must have shape [B] = ({batch_size},), one unreduced loss per example, "
                   f"got {_shape(out.losses)}")
    elif not out.losses.is_floating_point():
        problem = f"LossOutput.losses must be a floating-point tensor, got {out.losses.dtype}"
    elif training and torch.is_grad_enabled() and not out.losses.requires_grad:
        problem = ("LossOutput.losses does not require grad: it was computed without a path back to the policy "
                   "(detached, or built from .item() / torch.no_grad values), so training would change nothing")
    else:
        for name, value in out.metrics.items():
            if not isinstance(value, Tensor) or value.ndim > 1 or (value.ndim == 1 and value.shape[0] != batch_size):
                problem = (f"metric {name!r} must be a tensor of shape ({batch_size},) or a scalar tensor, got "
                           f"{_shape(value)}")
                break
    if problem is not None:
        raise PluginError(f"{_origin(algorithm)} broke the loss contract: {problem}.")
