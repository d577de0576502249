"""zoo.rollout.decoding: the sampler's decoding loop against transformers' ``generate``."""
from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig

from zoo.rollout.batches import encode_prompts
from zoo.rollout.decoding import decode, supports_decoding
from zoo.rollout.sampler import Sampler
from zoo.tiny import tiny_model, tiny_tokenizer

NEVER = 10**6  # an EOS id no model here emits: every row runs to max_new_tokens


@pytest.fixture(scope="module")
def setup():
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                       num_key_value_heads=1).eval()
    ids, mask = encode_prompts(tokenizer, ["hello there", "a much longer prompt about the sea and the sky", "x",
                                           "what is it"], 24)
    return model, tokenizer, ids, mask


def _generate(model, tokenizer, ids, mask, eos, *, seed=0, **sampling):
    config = GenerationConfig(max_new_tokens=12, do_sample=bool(sampling), eos_token_id=eos, num_beams=1,
                              pad_token_id=tokenizer.pad_token_id, return_dict_in_generate=True, use_cache=True,
                              **sampling)
    torch.manual_seed(seed)
    return model.generate(input_ids=ids, attention_mask=mask, generation_config=config).sequences[:, ids.shape[1]:]


def test_greedy_tokens_are_generates_while_rows_stop_at_different_steps(setup):
    """EOS ids picked from the unstopped greedy output so that row 0 stops after 4 tokens and row 2
    after 6 while the others run on: the loop then decodes 3 rows, then 2, and must still pick
    ``generate``'s tokens for every row, with padding after each row's EOS."""
    model, tokenizer, ids, mask = setup
    unstopped = _generate(model, tokenizer, ids, mask, [NEVER])
    eos = [int(unstopped[0, 3]), int(unstopped[2, 5])]
    assert eos[0] not in unstopped[0, :3].tolist() and eos[1] not in unstopped[2, :5].tolist()
    expected = _generate(model, tokenizer, ids, mask, eos)
    got = decode(model, ids, mask, max_new_tokens=12, eos_ids=eos, pad_id=tokenizer.pad_token_id, temperature=0)
    assert torch.equal(got.tokens, expected)
    assert (got.tokens[0, 4:] == tokenizer.pad_token_id).all() and (got.tokens[2, 6:] == tokenizer.pad_token_id).all()


def test_stopping_every_row_ends_the_loop(setup):
    model, tokenizer, ids, mask = setup
    first = _generate(model, tokenizer, ids, mask, [NEVER])[:, 0].tolist()
    got = decode(model, ids, mask, max_new_tokens=12, eos_ids=first, pad_id=tokenizer.pad_token_id, temperature=0)
    assert got.tokens.shape == (4, 1) and got.tokens[:, 0].tolist() == first


@pytest.mark.parametrize("sampling", [{"temperature": 1.0, "top_k": 0, "top_p": 1.0},
                                      {"temperature": 0.7, "top_k": 20, "top_p": 0.9},
                                      {"temperature": 1.3, "top_k": 0, "top_p": 0.5}])
def test_sampled_tokens_are_generates_for_the_same_seed(setup, sampling):
    """Same seed, same settings, no row stopping: the same draws as ``generate`` at every step,
    so each step samples from generate's distribution (temperature, top-k, top-p alike)."""
    model, tokenizer, ids, mask = setup
    expected = _generate(model, tokenizer, ids, mask, [NEVER], seed=3, **sampling)
    torch.manual_seed(3)
    got = decode(model, ids, mask, max_new_tokens=12, eos_ids=[NEVER], pad_id=tokenizer.pad_token_id,
                 **sampling)
    assert torch.equal(got.tokens, expected)


def test_recorded_log_probs_are_the_models_own(setup):
    """Each recorded value is log_softmax of the raw logits of a separate forward pass over the
    prompt and the tokens before it (0 after EOS)."""
    model, tokenizer, ids, mask = setup
    unstopped = _generate(model, tokenizer, ids, mask, [NEVER])
    eos = [int(unstopped[0, 3])]
    torch.manual_seed(0)
    got = decode(model, ids, mask, max_new_tokens=6, eos_ids=eos, pad_id=tokenizer.pad_token_id, temperature=0,
                 record_logps=True)
    sequences = torch.cat([ids, got.tokens], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(got.tokens)], dim=1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=sequences, attention_mask=full_mask, position_ids=positions).logits.float()
    width = ids.shape[1]
    expected = logits[:, width - 1:-1].log_softmax(-1).gather(-1, got.tokens[..., None]).squeeze(-1)
    expected[0, 4:] = 0
    torch.testing.assert_close(got.token_logps, expected, rtol=1e-4, atol=1e-4)


def test_the_sampler_decodes_with_the_loop_and_matches_generate(setup, monkeypatch):
    """Sampler under greedy decoding: the loop (not ``generate``) ran, and the sequences are those
    of ``generate`` with the sampler's own settings (its EOS ids included)."""
    from zoo.rollout.settings import Sampling

    model, tokenizer, ids, mask = setup
    sampler = Sampler(model, tokenizer)
    expected = model.generate(input_ids=ids, attention_mask=mask,
                              generation_config=sampler._generation_config(
                                  Sampling(max_new_tokens=8, temperature=0))).sequences
    assert supports_decoding(model)

    def refuse(*args, **kwargs):
        raise AssertionError("the sampler called generate")

    monkeypatch.setattr(type(model), "generate", refuse)
    out = sampler(ids, mask, max_new_tokens=8, temperature=0)
    keep = out.attention_mask.bool()
    assert torch.equal(out.sequences[:, : expected.shape[1]].masked_fill(~keep[:, : expected.shape[1]], 0),
                       expected.masked_fill(~keep[:, : expected.shape[1]], 0))


@pytest.mark.parametrize("sampling", [{"temperature": 1.0, "top_k": 0, "top_p": 1.0},
                                      {"temperature": 0.8, "top_k": 20, "top_p": 0.9}])
def test_samples_of_one_prompt_share_its_prefill_and_draw_as_generate_does(setup, sampling):
    """Several samples per prompt: the prompts are run once (4 rows, not 12) and each sample starts
    from a copy of its prompt's cache, yet the draws are ``generate``'s with ``num_return_sequences``
    (which prefills every copy) for the same seed, in its row order."""
    model, tokenizer, ids, mask = setup
    config = GenerationConfig(max_new_tokens=10, do_sample=True, eos_token_id=[NEVER], num_beams=1,
                              num_return_sequences=3, pad_token_id=tokenizer.pad_token_id,
                              return_dict_in_generate=True, use_cache=True, **sampling)
    torch.manual_seed(5)
    expected = model.generate(input_ids=ids, attention_mask=mask, generation_config=config).sequences[:, ids.shape[1]:]
    widths = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: widths.append(kwargs["input_ids"].shape),
                                           with_kwargs=True)
    try:
        torch.manual_seed(5)
        got = decode(model, ids, mask, max_new_tokens=10, eos_ids=[NEVER], pad_id=tokenizer.pad_token_id,
                     samples_per_prompt=3, **sampling)
    finally:
        hook.remove()
    assert torch.equal(got.tokens, expected)
    assert widths[0] == ids.shape and all(shape == (12, 1) for shape in widths[1:])


def test_the_sampler_gives_each_prompt_its_samples_in_order(setup):
    """``Generation`` rows of one prompt are consecutive and carry that prompt (a row given another
    prompt's cache would show up as a mismatch with its own prompt's greedy continuation)."""
    model, tokenizer, ids, mask = setup
    sampler = Sampler(model, tokenizer)
    greedy = sampler(ids, mask, max_new_tokens=6, temperature=0)
    shared = sampler(ids, mask, max_new_tokens=6, temperature=1e-4, top_k=1, samples_per_prompt=2)
    assert shared.prompt_index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(shared.sequences, greedy.sequences.repeat_interleave(2, dim=0))
