"""The Sampler: determinism under a seed, stopping at EOS, and token log-probs that agree with a
separate forward pass; and the helpers that turn samples into training batches."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.forward.logprobs import sequence_logprobs
from zoo.rollout.batches import encode_prompts, generation_batch, right_padded, take_rows
from zoo.rollout.sampler import Sampler, best_of_n, first_eos_mask
from zoo.tiny import tiny_model
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)

PROMPTS = ["Review the soup:", "Hi", "Review this laptop, please:"]


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)


@pytest.fixture(scope="module")
def eos_prone_model(tokenizer):
    """A tiny model whose LM head favours EOS, so rows stop at different lengths."""
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1,
                       seed=3)
    head = nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = 4.0
    model.lm_head = head
    return model


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return encode_prompts(tokenizer, PROMPTS)


def test_encode_prompts_left_pads(tokenizer, prompts):
    ids, mask = prompts
    assert ids.shape == (3, len(PROMPTS[2]))  # byte-level tokenizer: one token per character, no BOS
    assert mask[1].tolist() == [0] * (len(PROMPTS[2]) - 2) + [1, 1]
    assert tokenizer.decode(ids[1][mask[1].bool()]) == "Hi"
    assert (ids[1][~mask[1].bool()] == tokenizer.pad_token_id).all()


def test_same_seed_same_samples_and_global_rng_untouched(model, tokenizer, prompts):
    sampler = Sampler(model, tokenizer)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = sampler(*prompts, max_new_tokens=12, samples_per_prompt=2, seed=5, record_logps=True)
    after_sampling = torch.rand(3)
    second = sampler(*prompts, max_new_tokens=12, samples_per_prompt=2, seed=5, record_logps=True)
    other = sampler(*prompts, max_new_tokens=12, samples_per_prompt=2, seed=6)
    assert torch.equal(first.sequences, second.sequences)
    assert first.texts == second.texts
    assert torch.equal(first.token_logps, second.token_logps)
    assert not torch.equal(first.sequences, other.sequences)
    # a seeded call draws from a forked RNG: the caller's random stream continues as if it had not run
    assert torch.equal(after_sampling, expected_next)


def test_layout_and_prompt_index(model, tokenizer, prompts):
    ids, mask = prompts
    generation = Sampler(model, tokenizer)(ids, mask, max_new_tokens=6, samples_per_prompt=2, seed=0)
    assert generation.sequences.shape == (6, ids.shape[1] + 6)
    assert generation.prompt_index.tolist() == [0, 0, 1, 1, 2, 2]
    # row i * n + j carries prompt i
    assert torch.equal(generation.sequences[:, : ids.shape[1]], ids[generation.prompt_index])
    assert torch.equal(generation.attention_mask[:, : ids.shape[1]], mask[generation.prompt_index])
    assert not generation.response_mask[:, : ids.shape[1]].any()
    assert len(generation.texts) == 6


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 20)])
def test_token_logps_match_a_separate_forward_pass(model, tokenizer, prompts, temperature, top_k):
    """``token_logps`` are log π under the model's own (temperature-1) distribution, whatever the
    sampling temperature, so they equal a plain forward pass over the sampled sequences."""
    generation = Sampler(model, tokenizer)(*prompts, max_new_tokens=10, samples_per_prompt=2, seed=1,
                                           temperature=temperature, top_k=top_k, record_logps=True)
    input_ids, attention_mask, loss_mask, token_logps = right_padded(generation, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        forward = sequence_logprobs(model, input_ids, attention_mask, loss_mask, 1)
    assert loss_mask.sum() == generation.response_mask.sum()
    torch.testing.assert_close(token_logps, forward.token_logps, atol=1e-5, rtol=0)
    # and in the generation's own left-padded layout, positions counted from the first real token
    positions = (generation.attention_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=generation.sequences, attention_mask=generation.attention_mask,
                       position_ids=positions).logits
    direct = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, generation.sequences[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(generation.token_logps[:, 1:], direct * generation.response_mask[:, 1:],
                               atol=1e-5, rtol=0)


def test_rows_stop_at_their_first_eos(eos_prone_model, tokenizer, prompts):
    eos = tokenizer.eos_token_id
    generation = Sampler(eos_prone_model, tokenizer)(*prompts, max_new_tokens=16, samples_per_prompt=4, seed=2,
                                                        record_logps=True)
    lengths = generation.response_lengths
    assert lengths.min() < lengths.max(), "the EOS bias should end rows at different lengths"
    width = prompts[0].shape[1]
    for row in range(generation.sequences.shape[0]):
        response = generation.sequences[row, width:]
        keep = generation.response_mask[row, width:]
        n = int(keep.sum())
        assert keep[:n].all() and not keep[n:].any()
        if n < 16:  # stopped early: the last kept token is EOS, the rest is padding with no log-prob
            assert response[n - 1] == eos
            assert (response[n:] == tokenizer.pad_token_id).all()
            assert (generation.token_logps[row, width + n:] == 0).all()
        assert (response[: n - 1] != eos).all()
        assert eos_prone_model.config.eos_token_id == eos
    assert all("</s>" not in text for text in generation.texts)


def test_first_eos_mask_when_padding_is_eos():
    """Tokenizers that pad with EOS: only the first EOS belongs to the response."""
    tokens = torch.tensor([[5, 6, 2, 2, 2], [5, 2, 7, 2, 2], [5, 6, 7, 8, 9]])
    assert first_eos_mask(tokens, [2]).long().tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert first_eos_mask(tokens, [2, 7]).long().tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]


def test_greedy_ignores_the_seed(model, tokenizer, prompts):
    sampler = Sampler(model, tokenizer)
    a = sampler(*prompts, max_new_tokens=8, temperature=0, seed=1, record_logps=True)
    b = sampler(*prompts, max_new_tokens=8, temperature=0, seed=2)
    assert torch.equal(a.sequences, b.sequences)
    # greedy picks the arg-max of the model's distribution at every step
    input_ids, attention_mask, loss_mask, token_logps = right_padded(a, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    best = logits.float().log_softmax(-1).max(-1).values
    torch.testing.assert_close(token_logps[:, 1:], best[:, :-1] * loss_mask[:, 1:], atol=1e-5, rtol=0)


def test_log_probs_are_recorded_only_when_asked(model, tokenizer, prompts):
    """Without ``record_logps`` no log-softmax runs per token and the generation carries none;
    the samples themselves do not change."""
    sampler = Sampler(model, tokenizer)
    plain = sampler(*prompts, max_new_tokens=6, samples_per_prompt=2, seed=3)
    recorded = sampler(*prompts, max_new_tokens=6, samples_per_prompt=2, seed=3, record_logps=True)
    assert plain.token_logps is None and right_padded(plain, pad_id=tokenizer.pad_token_id)[3] is None
    assert recorded.token_logps is not None and torch.equal(plain.sequences, recorded.sequences)


def test_sampling_settings_check_themselves():
    from zoo import ConfigError
    from zoo.rollout import Sampling

    with pytest.raises(ConfigError, match=r"sampling\.top_p = 1\.5"):
        Sampling(top_p=1.5)
    with pytest.raises(ConfigError, match=r"sampling\.samples_per_prompt = 0"):
        Sampling(samples_per_prompt=0)
    with pytest.raises(TypeError, match="not both"):
        Sampler.__call__(None, None, None, Sampling(), temperature=1.0)


def test_sampler_restores_training_mode(model, tokenizer, prompts):
    model.train()
    Sampler(model, tokenizer)(*prompts, max_new_tokens=2, seed=0)
    assert model.training
    model.eval()


def test_generation_batch_and_take_rows(model, tokenizer, prompts):
    generation = Sampler(model, tokenizer)(*prompts, max_new_tokens=5, samples_per_prompt=2, seed=4)
    batch = generation_batch(generation, PROMPTS, rows=torch.tensor([5, 0, 3]), pad_id=tokenizer.pad_token_id,
                             extras={"score": torch.tensor([1.0, 2.0, 3.0])})
    assert batch.prompts == [PROMPTS[2], PROMPTS[0], PROMPTS[1]]
    assert batch.valid.shape == (3, 1)
    # right-padded, prompt first: the second row holds "Review the soup:" from position 0
    n_prompt = len(PROMPTS[0])
    assert tokenizer.decode(batch.input_ids[1, :n_prompt]) == PROMPTS[0]
    assert batch.loss_mask[1, n_prompt: n_prompt + 5].all() and not batch.loss_mask[1, :n_prompt].any()
    picked = take_rows(batch, torch.tensor([2, 1]))
    assert picked.prompts == [PROMPTS[1], PROMPTS[0]]
    assert picked.extras["score"].tolist() == [3.0, 2.0]
    assert torch.equal(picked.input_ids[1], batch.input_ids[1, : picked.input_ids.shape[1]])
    assert picked.input_ids.shape[1] == int(picked.attention_mask.sum(-1).max())


def test_best_of_n_returns_the_highest_reward_sample(model, tokenizer):
    class LengthReward:
        name = "length"

        def score(self, prompts, responses):
            return torch.tensor([float(len(r)) for r in responses])

    result = best_of_n(Sampler(model, tokenizer), LengthReward(), PROMPTS, n=4, batch_size=2, seed=0,
                       max_new_tokens=6)
    assert result.all_scores.shape == (3, 4)
    for b in range(3):
        assert len(result.all_texts[b]) == 4
        assert result.scores[b] == result.all_scores[b].max()
        assert float(len(result.texts[b])) == result.scores[b]
        assert result.texts[b] == result.all_texts[b][int(result.index[b])]
