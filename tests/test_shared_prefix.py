"""Shared prompts (data.shared_prefix): the layout, and exactness against the padded path."""
from __future__ import annotations

import pytest
import torch

from zoo.config import load_config
from zoo.data.collate import Collator
from zoo.errors import ConfigError
from zoo.forward.attention import VARLEN
from zoo.forward.shared_prefix import check_shared_prefix_support, share_prefixes
from zoo.tiny import tiny_model

from test_packing import _examples, _module, assert_same_training, hh_sample


def test_a_pair_becomes_one_prompt_and_two_responses_with_their_own_positions():
    pad = 0
    # prompt 11 12 13, chosen 21 22, rejected 31; the second pair: prompt 14, chosen 41 42 43, rejected 51 52
    ids = torch.tensor([[11, 12, 13, 21, 22], [11, 12, 13, 31, pad], [14, 41, 42, 43, pad], [14, 51, 52, pad, pad]])
    lengths = [5, 4, 4, 3]
    loss_mask = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.bool)
    rows = share_prefixes(ids, lengths, loss_mask, 2, pad)
    assert rows.input_ids.tolist() == [[11, 12, 13, 21, 22, 31], [14, 41, 42, 43, 51, 52]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 3, 4, 3], [0, 1, 2, 3, 1, 2]]
    assert rows.blocks == [[(3, (2, 1))], [(1, (3, 2))]]
    # the rejected response's first token is predicted by the prompt's last token, not the chosen's last
    assert rows.predecessor.tolist() == [-1, 0, 1, 2, 3, 2, -1, 6, 7, 8, 6, 10]
    assert rows.where.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 5, -1], [6, 7, 8, 9, -1], [6, 10, 11, -1, -1]]
    one_row = share_prefixes(ids, lengths, loss_mask, 2, pad, one_row=True)
    assert one_row.input_ids.tolist() == [[11, 12, 13, 21, 22, 31, 14, 41, 42, 43, 51, 52]]
    assert one_row.blocks == [[(3, (2, 1)), (1, (3, 2))]]


def test_the_prefix_stops_where_rows_differ_or_a_loss_scores():
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 9, 8], [5, 6, 7, 9]])
    scored = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    assert share_prefixes(ids, [4, 4, 4], scored, 3, 0).blocks == [[(1, (3, 3, 3))]]  # row 0 scores from token 1
    scored[0, 1] = False
    assert share_prefixes(ids, [4, 4, 4], scored, 3, 0).blocks == [[(2, (2, 2, 2))]]  # row 1 differs at token 2
    scored[:] = True  # train_on_prompt: nothing may be shared
    assert share_prefixes(ids, [4, 4, 4], scored, 3, 0).blocks == [[(0, (4, 4, 4))]]
    # an unfilled ranked slot (length 0) takes no room and does not shorten the prefix
    assert share_prefixes(ids, [4, 4, 0], scored & False, 3, 0).blocks == [[(2, (2, 2))]]


@pytest.mark.parametrize("one_row", [False, True])
@pytest.mark.parametrize("algorithm, spec, shape", [
    ("dpo", "builtin:tiny_prefs", "pairwise"),
    ("rrhf", "builtin:tiny_ranked", "ranked"),
    ("sft", "builtin:tiny_sft", "sft"),
])
def test_shared_prompts_give_the_padded_losses_and_gradients(tokenizer, algorithm, spec, shape, one_row):
    torch.manual_seed(0)
    module = _module(algorithm, tokenizer, VARLEN)
    examples = _examples(spec, shape, tokenizer, count=8)
    padded_batch = Collator(tokenizer.pad_token_id)(examples)
    shared_batch = Collator(tokenizer.pad_token_id, shared_prefix=True, pack_capacity=96 if one_row else None)(examples)
    if shape != "sft":  # something is shared
        real = int(padded_batch.attention_mask.sum())
        assert int((shared_batch.packed.input_ids != tokenizer.pad_token_id).sum()) < real
    assert_same_training(module, padded_batch, shared_batch)


@pytest.mark.parametrize("one_row", [False, True])
def test_shared_hh_prompts_match_padded_token_by_token(tokenizer, shared_data, tmp_path, one_row):
    """Real dialogues: long shared prompts, responses of very different lengths."""
    module = _module("dpo", tokenizer, VARLEN)
    examples = _examples(hh_sample(shared_data, tmp_path), "pairwise", tokenizer, count=6, max_length=512)
    padded_batch = Collator(tokenizer.pad_token_id)(examples)
    shared_batch = Collator(tokenizer.pad_token_id, shared_prefix=True, pack_capacity=512 if one_row else None)(
        examples)
    assert shared_batch.packed.num_positions < 0.8 * padded_batch.input_ids.numel()
    with torch.no_grad():
        padded = module.outputs(module.policy, padded_batch)
        shared = module.outputs(module.policy, shared_batch)
    torch.testing.assert_close(shared.token_logps, padded.token_logps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared.sum, padded.sum, atol=1e-5, rtol=1e-6)
    assert torch.equal(shared.lengths, padded.lengths)


def test_hidden_states_come_back_in_the_padded_layout(tokenizer):
    from zoo.forward.logprobs import sequence_logprobs
    from zoo.forward.shared_prefix import shared_prefix_logprobs

    module = _module("dpo", tokenizer, VARLEN)
    examples = _examples("builtin:tiny_prefs", "pairwise", tokenizer, count=4)
    batch = Collator(tokenizer.pad_token_id, shared_prefix=True)(examples)
    with torch.no_grad():
        padded = sequence_logprobs(module.policy, batch.input_ids, batch.attention_mask, batch.loss_mask, 2,
                                   hidden_states=True)
        shared = shared_prefix_logprobs(module.policy, batch.packed, batch.input_ids, batch.loss_mask, 2,
                                        hidden_states=True)
    real = batch.attention_mask.bool()
    torch.testing.assert_close(shared.hidden_states[real], padded.hidden_states[real], atol=1e-5, rtol=1e-5)
    assert not shared.hidden_states[~real].any()
    torch.testing.assert_close(shared.token_logps, padded.token_logps, atol=1e-5, rtol=1e-5)


def test_a_model_without_sdpa_is_refused_by_name(tokenizer):
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    model.set_attn_implementation("eager")
    with pytest.raises(ConfigError, match=r"data.shared_prefix: the policy uses attention implementation 'eager'"):
        check_shared_prefix_support(model)


def test_shared_prefix_is_refused_for_algorithms_without_offline_logprobs():
    from zoo.planning import check_scale_options
    from zoo.registry import get_registry

    config = load_config(raw={"algorithm": "grpo", "data": {"shared_prefix": True}})
    with pytest.raises(ConfigError, match="data.shared_prefix = true: algorithm 'grpo' generates"):
        check_scale_options(config, get_registry().algorithm("grpo")())


def test_gradients_are_exact_under_activation_checkpointing(tokenizer):
    """Checkpointed layers rerun attention in the backward pass, outside the forward call: the
    blocks must travel with the layer's inputs."""
    torch.manual_seed(0)
    module = _module("dpo", tokenizer, VARLEN)
    module.policy.train()
    module.policy.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    examples = _examples("builtin:tiny_prefs", "pairwise", tokenizer, count=6)
    assert_same_training(module, Collator(tokenizer.pad_token_id)(examples),
                         Collator(tokenizer.pad_token_id, shared_prefix=True)(examples))


def test_a_model_still_on_sdpa_is_switched_before_it_scores_blocks(tokenizer):
    """A reference loaded only to fill the cache never went through the run's set-up."""
    torch.manual_seed(0)
    module = _module("dpo", tokenizer, "sdpa")
    assert module.policy.config._attn_implementation == "sdpa"
    examples = _examples("builtin:tiny_prefs", "pairwise", tokenizer, count=4)
    with torch.no_grad():
        padded = module.outputs(module.policy, Collator(tokenizer.pad_token_id)(examples))
        shared = module.outputs(module.policy, Collator(tokenizer.pad_token_id, shared_prefix=True)(examples))
    assert module.policy.config._attn_implementation == VARLEN
    torch.testing.assert_close(shared.token_logps, padded.token_logps, atol=1e-5, rtol=1e-5)
