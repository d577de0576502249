"""Which model is the reference: chosen here, for the training loop and for the reference cache.

* LoRA: the policy with its adapter disabled (nothing is loaded);
* ``model.reference`` set: that model, loaded frozen;
* otherwise the starting policy: before training the policy *is* the reference, so the one-off
  cache pass scores the policy itself, while the training loop needs a frozen copy of it.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from zoo.config import RunConfig


def reference_model(config: RunConfig, policy: nn.Module, tokenizer: Any, *, copy_policy: bool) -> tuple[nn.Module, bool]:
    """(the reference, whether a model was loaded or copied for it); see the module docstring.

    ``copy_policy``: the reference must stay fixed while the policy trains (the training loop),
    rather than be read once before training starts (the reference cache).
    """
    from zoo.lora import AdapterDisabledReference, is_lora
    from zoo.models import load_reference

    if is_lora(policy):
        return AdapterDisabledReference(policy), False
    if config.model.reference is None and not copy_policy:
        return policy, False
    return load_reference(config.model, policy, tokenizer), True


def training_reference(config: RunConfig, policy: nn.Module, tokenizer: Any) -> nn.Module:
    """The frozen reference the training loop runs on every batch (packed batches patched in)."""
    from zoo.forward.attention import enable_varlen_attention

    reference, loaded = reference_model(config, policy, tokenizer, copy_policy=True)
    if loaded and config.data.shared_prefix:
        from zoo.forward.shared_prefix import check_shared_prefix_support

        check_shared_prefix_support(reference, role="the reference model")
    elif loaded and config.data.padding_free:
        enable_varlen_attention(reference)
    return reference
