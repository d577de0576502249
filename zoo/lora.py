"""LoRA through peft, for every algorithm: the adapted policy, its reference, its saved form.

``model.lora`` wraps the policy in a peft ``PeftModel`` whose only trainable parameters are the
adapters (plus, for a scalar-score model, its new head, which peft keeps trainable for
``SEQ_CLS``). The reference is the same model with the adapter disabled
(``PeftModel.disable_adapter()``): the frozen base weights *are* the starting policy, so no second
copy of the model is ever made.

A finished run saves ``model/`` as an ordinary full model with the adapter merged into the base
weights (``merge_and_unload``), loadable with ``AutoModelForCausalLM.from_pretrained`` like any
other run, and ``model/adapter/`` holding the adapter alone (``adapter_model.safetensors``, a
few MB for a multi-billion-parameter base), loadable onto the base model with
``peft.PeftModel.from_pretrained(base, "RUN/model/adapter")``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import nn

from zoo.config import LoraConfig


def apply_lora(model: nn.Module, config: LoraConfig, *, task: Literal["CAUSAL_LM", "SEQ_CLS"] = "CAUSAL_LM"
               ) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters on ``config.target_modules``."""
    peft_config = PeftLoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                 target_modules=list(config.target_modules), task_type=task)
    return get_peft_model(model, peft_config)


def is_lora(model: Any) -> bool:
    return isinstance(model, PeftModel)


class AdapterDisabledReference(nn.Module):
    """The reference model of a LoRA run: the policy itself, called with its adapter disabled.

    It shares every weight with the policy, so it must never be frozen, moved apart or
    optimised on its own. The forward pass runs in eval mode (no dropout) like any frozen
    reference, and restores the policy's mode afterwards.
    """

    def __init__(self, policy: PeftModel):
        super().__init__()
        self.policy = policy

    @property
    def config(self) -> Any:
        return self.policy.config

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.scoring_view() as model:
            return model(*args, **kwargs)

    @contextlib.contextmanager
    def scoring_view(self) -> Iterator[PeftModel]:
        """The policy itself, in eval mode with its adapter disabled, for the duration of the block.

        :func:`zoo.forward.batch_logprobs` scores through it, so the reference gets the policy's
        own forward path (the LM head at scored positions only, chunked) instead of the full
        ``[rows, positions, vocabulary]`` logits a call to this wrapper returns.
        """
        was_training = self.policy.training
        self.policy.eval()
        try:
            with self.policy.disable_adapter():
                yield self.policy
        finally:
            self.policy.train(was_training)


def save_policy(policy: nn.Module, model_dir: Path) -> nn.Module:
    """Save the trained policy to ``model_dir`` as safetensors; returns the model that was saved.

    A LoRA policy is saved twice: its adapter alone in ``model_dir/adapter`` and, merged into the
    base weights, as a full model in ``model_dir``. The merge happens in place (training is over),
    so the returned merged model replaces the peft wrapper without a second copy in memory.
    """
    if not is_lora(policy):
        policy.save_pretrained(model_dir, safe_serialization=True)
        return policy
    policy.save_pretrained(model_dir / "adapter", safe_serialization=True)
    merged = policy.merge_and_unload()
    merged.save_pretrained(model_dir, safe_serialization=True)
    return merged
