"""zoo_varlen attention: per-sequence causal attention for packed rows, transformers' sdpa otherwise."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.forward.attention import (enable_varlen_attention, sequence_starts, uses_varlen_attention,
                                   varlen_attention_forward)
from zoo.forward.packing import check_packing_support, packed_forward
from zoo.tiny import tiny_model


def _naive_attention(query, key, value):
    """Causal softmax attention written out, kv heads repeated for the query heads that share them."""
    repeat = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(repeat, 1), value.repeat_interleave(repeat, 1)
    scores = query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5
    length = query.shape[2]
    scores = scores.masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(-1) @ value


def test_each_sequence_attends_to_itself_only_with_shared_kv_heads():
    torch.manual_seed(0)
    lengths = [5, 1, 9, 3]
    total = sum(lengths)
    query, key, value = torch.randn(1, 4, total, 8), torch.randn(1, 2, total, 8), torch.randn(1, 2, total, 8)
    cu = torch.tensor([0, 5, 6, 15, 18], dtype=torch.int32)
    out, weights = varlen_attention_forward(torch.nn.Module(), query, key, value, None, scaling=8 ** -0.5,
                                            cu_seq_lens_q=cu)
    assert weights is None and out.shape == (1, total, 4, 8)
    expected = torch.cat([_naive_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e])
                          for s, e in zip(cu[:-1].tolist(), cu[1:].tolist())], dim=2).transpose(1, 2)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_sequence_starts_reads_restarting_positions():
    positions = torch.tensor([[0, 1, 2, 0, 1], [0, 1, 0, 0, 0]])
    assert sequence_starts(positions).tolist() == [0, 3, 5, 7, 8, 9, 10]


def test_without_boundaries_it_is_transformers_sdpa_mask_and_all(tokenizer):
    """Generation and padded batches: left padding, so the mask matters."""
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    ids = torch.randint(4, 200, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, :3] = 0
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        assert enable_varlen_attention(model) and uses_varlen_attention(model)
        varlen = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(varlen, reference, atol=0, rtol=0)


def test_packed_rows_run_as_one_and_match_each_sequence_alone(tokenizer):
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    enable_varlen_attention(model)
    check_packing_support(model)
    first, second, third = torch.randint(4, 200, (6,)), torch.randint(4, 200, (4,)), torch.randint(4, 200, (10,))
    rows = torch.stack([torch.cat([first, second]), third])
    positions = torch.stack([torch.cat([torch.arange(6), torch.arange(4)]), torch.arange(10)])
    with torch.no_grad():
        packed = packed_forward(model, rows, positions).logits
        alone = [model(input_ids=s[None]).logits[0] for s in (first, second, third)]
    assert packed.shape == (2, 10, model.config.vocab_size)
    for got, want in zip([packed[0, :6], packed[0, 6:], packed[1]], alone):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_only_sdpa_models_without_windows_switch(tokenizer):
    eager = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    eager.set_attn_implementation("eager")
    assert not enable_varlen_attention(eager) and eager.config._attn_implementation == "eager"
    windowed = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                          num_key_value_heads=1)
    windowed.config.sliding_window = 4
    assert not enable_varlen_attention(windowed) and windowed.config._attn_implementation == "sdpa"


def test_gradients_flow_through_every_sequence():
    torch.manual_seed(1)
    query = torch.randn(1, 2, 7, 4, requires_grad=True)
    key = torch.randn(1, 2, 7, 4, requires_grad=True)
    value = torch.randn(1, 2, 7, 4, requires_grad=True)
    cu = torch.tensor([0, 3, 7], dtype=torch.int32)
    out, _ = varlen_attention_forward(torch.nn.Module(), query, key, value, None, cu_seq_lens_q=cu)
    out.square().sum().backward()
    grads = [t.grad.clone() for t in (query, key, value)]
    for t in (query, key, value):
        t.grad = None
    pieces = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], is_causal=True)
              for s, e in ((0, 3), (3, 7))]
    torch.cat(pieces, 2).square().sum().backward()
    for got, t in zip(grads, (query, key, value)):
        torch.testing.assert_close(got, t.grad, atol=1e-6, rtol=1e-5)


def test_a_lora_wrapped_policy_switches_and_stays_exact(tokenizer):
    from zoo.config import LoraConfig
    from zoo.lora import AdapterDisabledReference, apply_lora

    base = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    policy = apply_lora(base, LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    assert enable_varlen_attention(policy) and base.config._attn_implementation == "zoo_varlen"
    check_packing_support(policy)
    first, second = torch.randint(4, 200, (5,)), torch.randint(4, 200, (7,))
    rows = torch.cat([first, second])[None]
    positions = torch.cat([torch.arange(5), torch.arange(7)])[None]
    reference = AdapterDisabledReference(policy)
    with torch.no_grad():
        for model in (policy, reference):
            packed = packed_forward(model, rows, positions).logits[0]
            torch.testing.assert_close(packed[:5], model(input_ids=first[None]).logits[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(packed[5:], model(input_ids=second[None]).logits[0], atol=1e-5, rtol=1e-5)


def test_model_attn_implementation_is_passed_to_transformers(tokenizer):
    import pytest

    from zoo.config import ModelConfig, TinyModelConfig
    from zoo.errors import ConfigError
    from zoo.models import load_causal_lm

    small = TinyModelConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    assert load_causal_lm(ModelConfig(tiny=small), tokenizer).config._attn_implementation == "sdpa"
    eager = load_causal_lm(ModelConfig(tiny=small, attn_implementation="eager"), tokenizer)
    assert eager.config._attn_implementation == "eager"
    with pytest.raises(ConfigError, match="model.attn_implementation = 'no_such_kernel'"):
        load_causal_lm(ModelConfig(tiny=small, attn_implementation="no_such_kernel"), tokenizer)


def test_gradient_checkpointing_recomputes_the_same_packed_attention(tokenizer):
    """The backward pass re-runs each layer outside the packed call: it must still see the boundaries."""
    def grads(checkpointing: bool):
        model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                           num_key_value_heads=1)
        enable_varlen_attention(model)
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        torch.manual_seed(3)
        rows = torch.randint(4, 200, (1, 15))
        positions = torch.cat([torch.arange(6), torch.arange(9)])[None]
        packed_forward(model, rows, positions).logits.square().mean().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5)
