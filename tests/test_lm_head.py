"""The LM head at scored positions only: the same log-probs and gradients as the full forward pass."""
from __future__ import annotations

import torch

from zoo.forward.lm_head import scored_token_logps, split_head
from zoo.forward.logprobs import token_logps_from_logits
from zoo.tiny import tiny_model

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1}


def _batch():
    torch.manual_seed(0)
    ids = torch.randint(4, 200, (3, 10))
    attention = torch.ones_like(ids)
    attention[1, 7:] = 0  # right padding
    scored = torch.zeros_like(ids, dtype=torch.bool)
    scored[0, 4:] = True
    scored[1, 2:7] = True
    scored[2, 9] = True
    return ids, attention, scored


def test_scored_positions_give_the_full_passes_log_probs_and_gradients(tokenizer):
    ids, attention, scored = _batch()
    model = tiny_model(tokenizer, **SMALL)
    full = token_logps_from_logits(model(input_ids=ids, attention_mask=attention).logits, ids) * scored
    full.sum().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    got = scored_token_logps(model, ids, scored, attention_mask=attention)
    assert got is not None and (got[~scored] == 0).all()  # zero where not scored
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    got.sum().backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], atol=1e-6, rtol=1e-4)


def test_a_lora_policy_keeps_its_adapter_and_its_disabled_reference_keeps_the_full_pass(tokenizer):
    from zoo.config import LoraConfig
    from zoo.lora import AdapterDisabledReference, apply_lora

    ids, attention, scored = _batch()
    policy = apply_lora(tiny_model(tokenizer, **SMALL), LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)  # an adapter that changes the outputs
        full = token_logps_from_logits(policy(input_ids=ids, attention_mask=attention).logits, ids) * scored
        got = scored_token_logps(policy, ids, scored, attention_mask=attention)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    assert split_head(AdapterDisabledReference(policy)) is None  # it is called whole, adapter disabled


def test_models_whose_logits_are_not_head_of_backbone_keep_the_full_pass(tokenizer):
    model = tiny_model(tokenizer, **SMALL)
    original = model.forward

    def scaled(*args, **kwargs):  # as models that scale or soft-cap their logits do
        out = original(*args, **kwargs)
        out.logits = 30 * torch.tanh(out.logits / 30) * 1.5
        return out

    model.forward = scaled
    assert split_head(model) is None
    ids, attention, scored = _batch()
    assert scored_token_logps(model, ids, scored, attention_mask=attention) is None
    assert split_head(torch.nn.Linear(3, 3)) is None
