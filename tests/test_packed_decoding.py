"""zoo.rollout.packed: decoding steps on oneDNN-packed weights (``Sampling.packed_weights``)."""
from __future__ import annotations

import logging

import pytest
import torch
from transformers import GenerationConfig

from zoo.errors import ConfigError
from zoo.rollout import Sampler, Sampling
from zoo.rollout.batches import encode_prompts
from zoo.rollout.decoding import decode
from zoo.rollout.packed import MIN_WEIGHTS, packed_linears, packing_available
from zoo.tiny import tiny_model, tiny_tokenizer

pytestmark = pytest.mark.skipif(not packing_available(), reason="torch built without oneDNN")

NEVER = 10**6


@pytest.fixture(scope="module")
def setup():
    """One layer wide enough that its query, output and MLP projections pack; the key and value ones and the LM
    head (768 × the tiny vocabulary) is under the size that packs."""
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer, hidden_size=768, intermediate_size=1024, num_hidden_layers=1,
                       num_attention_heads=12, num_key_value_heads=4).eval()
    prompts = ["hello there", "a much longer prompt about the sea and the sky", "x", "what is it"]
    ids, mask = encode_prompts(tokenizer, prompts, 24)
    return model, tokenizer, ids, mask


def _big_linears(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.weight.numel() >= MIN_WEIGHTS]


def test_big_linears_run_packed_inside_the_block_and_equal_the_default_to_rounding(setup):
    model, *_ = setup
    big = _big_linears(model)
    assert len(big) == 5  # q, o (768 × 768), gate, up, down; k and v (768 × 256) are too small
    inputs = {id(m): torch.randn(8, 1, m.in_features) for m in big}
    with torch.no_grad():
        expected = {id(m): m(inputs[id(m)]) for m in big}
        with packed_linears(model, 8) as count:
            assert count == 5
            assert all("forward" in m.__dict__ for m in big)
            assert "forward" not in model.lm_head.__dict__  # too small to gain
            got = {id(m): m(inputs[id(m)]) for m in big}
            one_row = big[0](inputs[id(big[0])][:1])  # a single row keeps the default matmul, bit for bit
        assert torch.equal(one_row, torch.nn.functional.linear(inputs[id(big[0])][:1], big[0].weight))
    assert not any("forward" in m.__dict__ for m in model.modules())
    for m in big:
        assert torch.allclose(got[id(m)], expected[id(m)], atol=1e-4, rtol=1e-4)


def test_a_weight_changed_in_place_is_packed_again(setup):
    """The packed copy is reused while the weight is unchanged, and rebuilt once the optimiser
    (here an in-place add) has changed it."""
    model, *_ = setup
    layer = _big_linears(model)[-1]
    x = torch.randn(8, 1, layer.in_features)
    saved = layer.weight.detach().clone()
    try:
        with torch.no_grad():
            with packed_linears(model, 8):
                before = layer(x)
            layer.weight.add_(0.5)
            with packed_linears(model, 8):
                after = layer(x)
            assert torch.allclose(after, torch.nn.functional.linear(x, layer.weight), atol=1e-4, rtol=1e-4)
            assert not torch.allclose(after, before, atol=1e-2)
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved)


def test_packed_greedy_decoding_picks_generates_tokens(setup):
    model, tokenizer, ids, mask = setup
    config = GenerationConfig(max_new_tokens=10, do_sample=False, eos_token_id=[NEVER], num_beams=1,
                              pad_token_id=tokenizer.pad_token_id, return_dict_in_generate=True, use_cache=True)
    expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config).sequences[:, ids.shape[1]:]
    got = decode(model, ids, mask, max_new_tokens=10, eos_ids=[NEVER], pad_id=tokenizer.pad_token_id,
                 temperature=0, packed_weights=True)
    assert torch.equal(got.tokens, expected)


def test_each_packed_step_samples_from_the_models_own_distribution(setup):
    """The log-prob of every sampled token, as the packed decoding steps computed it, equals the
    model's own in one default forward pass over the sampled sequences (to float rounding): each
    step's softmax, and so what multinomial draws from, is the model's distribution."""
    model, tokenizer, ids, mask = setup
    torch.manual_seed(0)
    got = decode(model, ids, mask, max_new_tokens=8, eos_ids=[NEVER], pad_id=tokenizer.pad_token_id,
                 temperature=1.0, samples_per_prompt=4, record_logps=True, packed_weights=True)
    rows = ids.repeat_interleave(4, dim=0)
    full = torch.cat([rows, got.tokens], dim=1)
    full_mask = torch.cat([mask.repeat_interleave(4, dim=0), torch.ones_like(got.tokens)], dim=1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=full, attention_mask=full_mask, position_ids=positions).logits
    width = ids.shape[1]
    own = logits[:, width - 1:-1].log_softmax(-1).gather(-1, got.tokens[..., None]).squeeze(-1)
    assert torch.allclose(got.token_logps, own, atol=1e-4)


def test_the_setting_is_checked_and_says_when_it_cannot_apply(setup, monkeypatch, caplog):
    model, tokenizer, ids, mask = setup
    with pytest.raises(ConfigError, match=r"sampling.packed_weights = 'yes': must be true or false"):
        Sampling(packed_weights="yes")
    import zoo.rollout.packed as packed_module
    import zoo.rollout.sampler as sampler_module

    monkeypatch.setattr(sampler_module, "supports_decoding", lambda model: False)
    monkeypatch.setattr(packed_module, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="zoo.rollout.packed"):
        Sampler(model, tokenizer)(ids[:1], mask[:1], max_new_tokens=2, packed_weights=True, seed=0)
    assert "packed_weights is on but has no effect here: the model is decoded by transformers' generate" \
        in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zoo.rollout.packed"):  # every rollout checks; one warning
        Sampler(model, tokenizer)(ids[:1], mask[:1], max_new_tokens=2, packed_weights=True, seed=0)
    assert "packed_weights" not in caplog.text
