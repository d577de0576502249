"""The LM head at scored positions only.

A preference loss reads ``log π(y_t | ...)`` at response tokens only, yet a causal LM's forward
pass projects every position onto the vocabulary: on Anthropic HH (max length 512) the response
is 42% of the real tokens and 29% of a padded batch's positions, so most of the LM head's matmul
and of the log-softmax over the vocabulary is thrown away (TRL's ``use_logits_to_keep`` saves
the same work for a shared prompt prefix). Here the backbone runs as usual and the head runs on
the hidden states of the positions that predict a scored token:

    logits_i = head(h_{t_i - 1}),    log π(x_{t_i}) = logits_i[x_{t_i}] − logsumexp(logits_i)

:func:`split_head` finds the backbone and the head of a transformers causal LM and checks once, on
the model itself, that ``head(backbone(x))`` gives its logits (models that scale or soft-cap
their logits, or wrappers that are not a transformers model, fail the check and keep the full
forward pass). Exact: the other positions' log-probs are masked out anyway.
"""
from __future__ import annotations

import logging
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.forward.chunked_head import linear_log_probs

log = logging.getLogger(__name__)
_checked: weakref.WeakKeyDictionary[nn.Module, tuple[nn.Module, nn.Module] | None] = weakref.WeakKeyDictionary()
#: Whether the backbone's ``last_hidden_state`` is the model's ``hidden_states[-1]`` (checked with the head).
_same_last_hidden: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _parts(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    get_base = getattr(model, "get_base_model", None)  # peft: the adapters live inside the base's modules
    base = get_base() if callable(get_base) else model
    prefix = getattr(base, "base_model_prefix", None)
    backbone = getattr(base, prefix, None) if isinstance(prefix, str) else None
    get_head = getattr(base, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if not isinstance(backbone, nn.Module) or not isinstance(head, nn.Module):
        return None
    return backbone, head


def split_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(backbone, head)`` when ``head(backbone(...).last_hidden_state)`` is the model's logits, else None."""
    if model in _checked:
        return _checked[model]
    parts = _parts(model)
    if parts is not None:
        backbone, head = parts
        parameter = next(model.parameters())
        ids = torch.arange(1, 6, device=parameter.device)[None] % int(getattr(model.config, "vocab_size", 5))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(input_ids=ids, use_cache=False, output_hidden_states=True)
                full = out.logits.float()
                last_hidden = backbone(input_ids=ids, use_cache=False).last_hidden_state
                split = head(last_hidden).float()
        except Exception:  # noqa: BLE001  (any structure this does not understand keeps the full pass)
            parts = None
        else:
            tolerance = (1e-4 if parameter.dtype == torch.float32 else 2e-2) * max(1.0, full.abs().max().item())
            if split.shape != full.shape or (split - full).abs().max().item() > tolerance:
                parts = None
            hidden_states = getattr(out, "hidden_states", None)
            _same_last_hidden[model] = bool(
                hidden_states and hidden_states[-1].shape == last_hidden.shape
                and torch.allclose(hidden_states[-1].float(), last_hidden.float(), rtol=0, atol=tolerance))
        finally:
            model.train(was_training)
    _checked[model] = parts
    return parts


def chunked_head_refusal(head: nn.Module) -> str | None:
    """Why ``head`` cannot run through :func:`zoo.forward.chunked_head.linear_log_probs` (None: it can)."""
    if type(head) is not nn.Linear:
        return f"the output layer is a {type(head).__name__}, not a plain torch.nn.Linear"
    if head._forward_hooks or head._forward_pre_hooks or nn.modules.module._global_forward_hooks \
            or nn.modules.module._global_forward_pre_hooks:
        return "the output layer has forward hooks"
    for name in ("weight", "bias"):
        value = getattr(head, name)
        if value is not None and type(value) not in (nn.Parameter, Tensor):
            return f"its {name} is a {type(value).__name__}"
    return None


_refusals: weakref.WeakKeyDictionary[nn.Module, str | None] = weakref.WeakKeyDictionary()


def head_log_probs(head: nn.Module, hidden: Tensor, targets: Tensor) -> Tensor:
    """``[N]`` float32 log-probs of ``targets`` under ``log_softmax(head(hidden))``; chunked where possible."""
    if head not in _refusals:
        _refusals[head] = chunked_head_refusal(head)
        if _refusals[head] is not None:
            log.info("LM head: %s; its logits at scored tokens are computed whole", _refusals[head])
    if _refusals[head] is None:
        return linear_log_probs(hidden, head.weight, head.bias, targets)
    return -F.cross_entropy(head(hidden).float(), targets, reduction="none")


def scored_token_logps(model: nn.Module, input_ids: Tensor, scored: Tensor, *, with_hidden: bool = False,
                       **forward: object) -> Tensor | tuple[Tensor, Tensor] | None:
    """``[R, L]`` log-probs of the tokens where ``scored`` is True (0 elsewhere), or None if unsupported.

    ``scored[:, 0]`` must be False (the first token has no prediction). ``forward`` goes to the
    backbone (``attention_mask``, ``position_ids``, attention kwargs). With ``with_hidden`` also the
    ``[R, L, d]`` last hidden states (the model's ``hidden_states[-1]``, checked once like the head).
    """
    parts = split_head(model)
    if parts is None or (with_hidden and not _same_last_hidden.get(model, False)):
        return None
    backbone, head = parts
    hidden = backbone(input_ids=input_ids, use_cache=False, **forward).last_hidden_state
    targets = scored[:, 1:]
    logps = head_log_probs(head, hidden[:, :-1][targets], input_ids[:, 1:][targets])
    shifted = logps.new_zeros(targets.shape).masked_scatter(targets, logps)
    token_logps = torch.cat([logps.new_zeros(input_ids.shape[0], 1), shifted], dim=1)
    return (token_logps, hidden) if with_hidden else token_logps
