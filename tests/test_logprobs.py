"""The log-prob module against a direct per-token computation on the tiny model.

The reference implementation here runs the model on each *unpadded* sequence separately (and,
for one sequence, on every prefix separately), takes a float64 log-softmax of the logits that
predict each response token, and adds them up in a Python loop. The core computes the same
numbers in one padded, concatenated forward pass.
"""
from __future__ import annotations

import pytest
import torch

from zoo.data.collate import Collator
from zoo.data.examples import Example
from zoo.data.tokenize import ExampleTokenizer
from zoo.forward.logprobs import reduce_sequences, sequence_logprobs, token_logps_from_logits
from zoo.tiny import tiny_model


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                      num_key_value_heads=1, seed=3).eval()


def ranked_batch(tokenizer, *, train_on_prompt: bool = False):
    """Two examples, k = 3: the second has only 2 responses (slot 2 is padding). Lengths differ."""
    encode = ExampleTokenizer(tokenizer, max_length=64, max_prompt_length=32)
    examples = [
        Example("Review the soup:", [" It was great.", " Bad.", " It was dull and sad."], [2.0, 0.0, 1.0], 1, "t"),
        Example("Hi", [" Hello there, friend.", " Go away."], [1.0, 0.0], 2, "t"),
    ]
    tokenized = [encode(e) for e in examples]
    batch = Collator(tokenizer.pad_token_id, train_on_prompt=train_on_prompt)(tokenized)
    return tokenized, batch


def direct_logprobs(model, ids: list[int], start: int) -> list[float]:
    """log p(ids[t] | ids[:t]) for t = start .. len(ids) − 1, from one unpadded forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    return [logits[t - 1].log_softmax(-1)[ids[t]].item() for t in range(start, len(ids))]


def test_sums_means_and_lengths_match_separate_forwards(model, tokenizer):
    tokenized, batch = ranked_batch(tokenizer)
    assert batch.group_size == 3
    with torch.no_grad():
        out = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, batch.group_size)
    assert out.sum.shape == out.mean.shape == out.lengths.shape == (2, 3)
    for b, example in enumerate(tokenized):
        for j in range(3):
            # padding slots repeat the first response (their numbers are computed, then ignored via valid)
            response = example.response_ids[j] if j < len(example.response_ids) else example.response_ids[0]
            ids = example.prompt_ids + response
            expected = direct_logprobs(model, ids, start=len(example.prompt_ids))
            assert out.lengths[b, j].item() == len(response)
            assert out.sum[b, j].item() == pytest.approx(sum(expected), abs=1e-4)
            assert out.mean[b, j].item() == pytest.approx(sum(expected) / len(response), abs=1e-5)
            # row b*k + j holds response j of example b; its scored tokens are exactly the response
            row = b * 3 + j
            positions = out.mask[row].nonzero().flatten().tolist()
            assert positions == list(range(len(example.prompt_ids), len(ids)))
            torch.testing.assert_close(out.token_logps[row, positions].double(), torch.tensor(expected, dtype=torch.float64),
                                       atol=1e-5, rtol=0)
            assert out.token_logps[row][~out.mask[row]].abs().sum().item() == 0
    assert batch.valid.tolist() == [[True, True, True], [True, True, False]]


def test_prefix_by_prefix_loop_matches(model, tokenizer):
    """Every response token scored by its own forward pass over just the prefix before it."""
    tokenized, batch = ranked_batch(tokenizer)
    with torch.no_grad():
        out = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, batch.group_size)
    example = tokenized[1]
    ids = example.prompt_ids + example.response_ids[0]
    total = 0.0
    with torch.no_grad():
        for t in range(len(example.prompt_ids), len(ids)):
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1].double()
            total += logits.log_softmax(-1)[ids[t]].item()
    assert out.sum[1, 0].item() == pytest.approx(total, abs=1e-4)


def test_train_on_prompt_scores_every_token_but_the_first(model, tokenizer):
    """With the whole text scored, |y| = len(ids) − 1: the first token has nothing to predict it."""
    tokenized, batch = ranked_batch(tokenizer, train_on_prompt=True)
    with torch.no_grad():
        out = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, batch.group_size)
    example = tokenized[0]
    ids = example.prompt_ids + example.response_ids[1]
    expected = direct_logprobs(model, ids, start=1)
    assert out.lengths[0, 1].item() == len(ids) - 1
    assert out.sum[0, 1].item() == pytest.approx(sum(expected), abs=1e-4)


def test_entropy_and_hidden_states(model, tokenizer):
    tokenized, batch = ranked_batch(tokenizer)
    with torch.no_grad():
        out = sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, batch.group_size,
                                hidden_states=True, entropy=True)
        ids = tokenized[0].prompt_ids + tokenized[0].response_ids[0]
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    t = len(tokenized[0].prompt_ids)
    probs = logits[t - 1].softmax(-1)
    expected = -(probs * probs.log()).sum().item()
    assert out.entropy[0, t].item() == pytest.approx(expected, abs=1e-4)
    assert out.hidden_states.shape == (*batch.input_ids.shape, 32)


def test_reduce_sequences_hand_worked():
    """Row 0 scores tokens 1-2 (−1, −2): sum −3, mean −1.5. Row 1 scores token 2 (−4): sum −4.

    Position 0 is never scored (nothing predicts it), even when the mask includes it.
    """
    token_logps = torch.tensor([[-9.0, -1.0, -2.0], [-9.0, -7.0, -4.0]])
    mask = torch.tensor([[True, True, True], [False, False, True]])
    total, mean, lengths = reduce_sequences(token_logps, mask, group_size=2)
    torch.testing.assert_close(total, torch.tensor([[-3.0, -4.0]]))
    torch.testing.assert_close(mean, torch.tensor([[-1.5, -4.0]]))
    assert lengths.tolist() == [[2, 1]]


def test_token_logps_from_logits_alignment():
    """Logits at position t predict token t + 1; with uniform logits over V = 4 each is −log 4."""
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 10.0  # position 0 strongly predicts token 2 at position 1
    out = token_logps_from_logits(logits, torch.tensor([[1, 2, 3]]))
    assert out[0, 0].item() == 0
    assert out[0, 1].item() == pytest.approx(-torch.log1p(3 * torch.exp(torch.tensor(-10.0))).item(), abs=1e-6)
    assert out[0, 2].item() == pytest.approx(-torch.log(torch.tensor(4.0)).item(), abs=1e-6)


def test_right_padded_batches_run_without_a_mask_and_left_padded_ones_keep_it(model, tokenizer, monkeypatch):
    from zoo.forward import logprobs

    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert logprobs.mask_for_forward(right) is None
    assert logprobs.mask_for_forward(left) is left

    _, batch = ranked_batch(tokenizer)
    assert not bool(batch.attention_mask.all())  # the batch has padding
    seen = []
    backbone_forward = type(model.model).forward

    def recording(self, *args, **kwargs):
        seen.append(kwargs.get("attention_mask"))
        return backbone_forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model.model), "forward", recording)
    with torch.no_grad():
        sequence_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask, batch.group_size)
    assert seen == [None]

    # Left padding: the same rows shifted right. The mask must reach the model, or real tokens
    # would attend to the padding before them.
    ids = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 6, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    loss_mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
    with torch.no_grad():
        out = sequence_logprobs(model, ids, mask, loss_mask, 1)
        masked = token_logps_from_logits(model(input_ids=ids, attention_mask=mask).logits, ids)
        unmasked = token_logps_from_logits(model(input_ids=ids).logits, ids)
    scored = out.mask
    torch.testing.assert_close(out.token_logps[scored], masked[scored], atol=1e-6, rtol=0)
    assert not torch.allclose(masked[1][scored[1]], unmasked[1][scored[1]], atol=1e-4)
