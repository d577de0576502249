"""Padding-free batches: packing, unpacking, and exactness against the padded path."""
from __future__ import annotations

import copy
import gzip
import random

import pytest
import torch

from zoo.config import DataConfig, load_config
from zoo.data.collate import Collator
from zoo.data.dataset import load_examples
from zoo.errors import ConfigError
from zoo.forward.attention import VARLEN, enable_varlen_attention
from zoo.forward.packing import check_packing_support, first_fit_decreasing, unpack
from zoo.module import AlignmentModule
from zoo.registry import get_registry
from zoo.tiny import tiny_model

HH_TEST = "hh-rlhf/harmless-base-test.jsonl.gz"


def _examples(spec: str, shape: str, tokenizer, *, count: int, max_length: int = 128, seed: int = 0):
    config = DataConfig(train=spec, max_length=max_length, max_prompt_length=max_length // 2, builtin_size=count,
                        on_bad_rows="skip")
    examples, _ = load_examples(spec, "train", shape, config, tokenizer)
    random.Random(seed).shuffle(examples)
    return examples[:count]


def _module(algorithm: str, tokenizer, attention: str = "sdpa") -> AlignmentModule:
    algorithm_cls = get_registry().algorithm(algorithm)
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                        num_key_value_heads=1, max_position_embeddings=512)
    if attention == VARLEN:
        assert enable_varlen_attention(policy)
    reference = copy.deepcopy(policy).eval() if algorithm_cls.needs_reference else None
    with torch.no_grad():  # a reference that differs from the policy, so both terms of DPO matter
        for parameter in policy.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    config = load_config(raw={"algorithm": algorithm}).train
    return AlignmentModule(policy, algorithm_cls(), config, reference=reference)


def _loss_and_grads(module: AlignmentModule, batch):
    module.policy.zero_grad()
    out = module.compute_loss(batch)
    out.losses.mean().backward()
    grads = {n: p.grad.clone() for n, p in module.policy.named_parameters() if p.grad is not None}
    return out, grads


def assert_same_training(module: AlignmentModule, padded_batch, other_batch) -> None:
    """The other layout's losses, metrics and gradients equal the padded batch's (float rounding)."""
    padded, padded_grads = _loss_and_grads(module, padded_batch)
    other, other_grads = _loss_and_grads(module, other_batch)
    torch.testing.assert_close(other.losses, padded.losses, atol=1e-5, rtol=1e-5)
    for name, value in padded.metrics.items():
        torch.testing.assert_close(other.metrics[name], value, atol=1e-5, rtol=1e-5)
    assert padded_grads.keys() == other_grads.keys()
    for name, grad in padded_grads.items():
        torch.testing.assert_close(other_grads[name], grad, atol=1e-5, rtol=1e-4)


def test_first_fit_decreasing_places_every_item_once_within_capacity():
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(200)]
    bins = first_fit_decreasing(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(200))
    assert all(sum(lengths[i] for i in b) <= 100 for b in bins)
    # First-fit decreasing never needs more than 11/9 OPT + 1 bins; OPT >= total / capacity.
    assert len(bins) <= 11 / 9 * (sum(lengths) / 100) + 1
    with pytest.raises(ValueError):
        first_fit_decreasing([101], 100)


def test_rows_are_grouped_by_fill_into_cheaper_forward_passes():
    from zoo.forward.packing import _call_cost, group_rows

    fills = [512, 510, 500, 480, 450, 400, 380, 350, 300, 260, 200, 160, 150]
    groups = group_rows(fills)
    assert groups[0][0] == 0 and groups[-1][1] == len(fills)
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))  # contiguous, covering every row
    assert all(length == fills[first] for first, _, length in groups)
    one_pass = _call_cost(len(fills), fills[0])
    assert 1 < len(groups) and sum(_call_cost(end - first, length) for first, end, length in groups) < one_pass
    assert group_rows([512] * 8) == [(0, 8, 512)]  # equal rows: one pass


def test_pack_then_unpack_restores_the_padded_tokens(tokenizer):
    examples = _examples("builtin:tiny_prefs", "pairwise", tokenizer, count=6)
    batch = Collator(tokenizer.pad_token_id, pack_capacity=128)(examples)
    packed = batch.packed
    real = int(batch.attention_mask.sum())
    assert int((packed.source >= 0).sum()) == real
    assert packed.input_ids.shape[1] <= 128
    assert packed.num_positions <= batch.input_ids.numel()
    restored = unpack(packed.input_ids.unsqueeze(-1), packed).squeeze(-1)
    assert torch.equal(restored, batch.input_ids * batch.attention_mask)
    # Positions restart at 0 at every sequence start and count up inside it.
    starts = (packed.position_ids == 0) & (packed.source >= 0)
    assert int(starts.sum()) == batch.input_ids.shape[0]


@pytest.mark.parametrize("attention", ["sdpa", VARLEN])
@pytest.mark.parametrize("algorithm, spec, shape", [
    ("dpo", "builtin:tiny_prefs", "pairwise"),
    ("rrhf", "builtin:tiny_ranked", "ranked"),
    ("sft", "builtin:tiny_sft", "sft"),
])
def test_packed_batches_give_the_padded_losses_and_gradients(tokenizer, algorithm, spec, shape, attention):
    torch.manual_seed(0)
    module = _module(algorithm, tokenizer, attention)
    examples = _examples(spec, shape, tokenizer, count=8)
    padded_batch = Collator(tokenizer.pad_token_id)(examples)
    packed_batch = Collator(tokenizer.pad_token_id, pack_capacity=96)(examples)
    assert packed_batch.packed is not None and packed_batch.packed.input_ids.shape[0] < padded_batch.input_ids.shape[0]
    assert_same_training(module, padded_batch, packed_batch)


def hh_sample(shared_data, directory, rows: int = 48) -> str:
    """The first ``rows`` HH pairs as a small JSONL file (loading all 2,312 would dominate the test)."""
    with gzip.open(shared_data / HH_TEST, "rt", encoding="utf-8") as source:
        lines = [line for _, line in zip(range(rows), source)]
    path = directory / "hh-sample.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("attention", ["sdpa", VARLEN])
def test_packed_hh_pairs_match_padded_within_1e5(tokenizer, shared_data, tmp_path, attention):
    """The real length mix: HH dialogues of very different lengths, several per packed row."""
    module = _module("dpo", tokenizer, attention)
    examples = _examples(hh_sample(shared_data, tmp_path), "pairwise", tokenizer, count=6, max_length=512)
    padded_batch = Collator(tokenizer.pad_token_id)(examples)
    packed_batch = Collator(tokenizer.pad_token_id, pack_capacity=512)(examples)
    assert packed_batch.packed.num_positions < 0.9 * padded_batch.input_ids.numel()
    assert len(packed_batch.packed.row_groups) > 1  # several forward passes, scattered back together
    with torch.no_grad():
        padded = module.outputs(module.policy, padded_batch)
        packed = module.outputs(module.policy, packed_batch)
        padded_loss = module.algorithm.loss(padded, module.reference_outputs(padded_batch), padded_batch).losses
        packed_loss = module.algorithm.loss(packed, module.reference_outputs(packed_batch), packed_batch).losses
    torch.testing.assert_close(packed.sum, padded.sum, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(packed.token_logps, padded.token_logps, atol=1e-5, rtol=1e-5)
    assert torch.equal(packed.lengths, padded.lengths)
    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", ["sdpa", VARLEN])
def test_hidden_states_and_entropy_are_unpacked_to_the_padded_layout(tokenizer, attention):
    module = _module("dpo", tokenizer, attention)
    examples = _examples("builtin:tiny_prefs", "pairwise", tokenizer, count=4)
    padded_batch = Collator(tokenizer.pad_token_id)(examples)
    packed_batch = Collator(tokenizer.pad_token_id, pack_capacity=96)(examples)
    from zoo.forward.logprobs import sequence_logprobs
    from zoo.forward.packing import packed_sequence_logprobs

    with torch.no_grad():
        padded = sequence_logprobs(module.policy, padded_batch.input_ids, padded_batch.attention_mask,
                                   padded_batch.loss_mask, 2, hidden_states=True, entropy=True)
        packed = packed_sequence_logprobs(module.policy, packed_batch.packed, packed_batch.loss_mask, 2,
                                          hidden_states=True, entropy=True)
    real = padded_batch.attention_mask.bool()
    torch.testing.assert_close(packed.hidden_states[real], padded.hidden_states[real], atol=1e-5, rtol=1e-5)
    inside = real.clone()
    inside[:, 0] = False
    torch.testing.assert_close(packed.entropy[inside], padded.entropy[inside], atol=1e-5, rtol=1e-5)


def test_a_model_that_ignores_sequence_boundaries_is_refused(tokenizer):
    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    check_packing_support(model)
    original = model.forward

    def forward_across_sequences(*args, position_ids=None, attention_mask=None, **kwargs):
        return original(*args, **kwargs)  # plain causal attention across the whole row

    model.forward = forward_across_sequences
    with pytest.raises(ConfigError, match="data.padding_free"):
        check_packing_support(model)


def test_padding_free_is_refused_for_algorithms_without_offline_logprobs():
    from zoo.algorithm import Algorithm
    from zoo.planning import check_scale_options

    class Online(Algorithm):
        name = "online_example"
        data_shape = "prompt"
        generates_online = True
        needs_reference = True

    config = load_config(raw={"algorithm": "dpo", "data": {"padding_free": True}})
    with pytest.raises(ConfigError, match="data.padding_free"):
        check_scale_options(config, Online())
    config = load_config(raw={"algorithm": "dpo", "train": {"reference_cache": "required"}})
    with pytest.raises(ConfigError, match="train.reference_cache"):
        check_scale_options(config, Online())


@pytest.mark.parametrize("attention", ["sdpa", VARLEN])
def test_hidden_states_without_entropy_take_the_scored_head_and_match_the_full_pass(tokenizer, attention):
    module = _module("dpo", tokenizer, attention)
    examples = _examples("builtin:tiny_prefs", "pairwise", tokenizer, count=4)
    padded_batch = Collator(tokenizer.pad_token_id)(examples)
    packed_batch = Collator(tokenizer.pad_token_id, pack_capacity=96)(examples)
    from zoo.forward.logprobs import sequence_logprobs
    from zoo.forward.packing import packed_sequence_logprobs

    policy = module.policy
    # the full pass (entropy asks for every position's logits), as the reference numbers
    full = sequence_logprobs(policy, padded_batch.input_ids, padded_batch.attention_mask, padded_batch.loss_mask, 2,
                             hidden_states=True, entropy=True)
    real = padded_batch.attention_mask.bool()

    def loss(out):
        return out.sum.sum() + (out.hidden_states * real[..., None]).square().sum() / out.hidden_states.numel()

    loss(full).backward()
    expected = {n: p.grad.clone() for n, p in policy.named_parameters()}
    from zoo.forward.lm_head import split_head

    assert split_head(policy) is not None  # checked (with the model's own forward) before it is barred
    original_forward = policy.forward
    policy.forward = lambda *a, **k: pytest.fail("the full LM forward ran although only hidden states were asked")
    try:
        for run in (lambda: sequence_logprobs(policy, padded_batch.input_ids, padded_batch.attention_mask,
                                              padded_batch.loss_mask, 2, hidden_states=True),
                    lambda: packed_sequence_logprobs(policy, packed_batch.packed, packed_batch.loss_mask, 2,
                                                     hidden_states=True)):
            policy.zero_grad()
            out = run()
            torch.testing.assert_close(out.token_logps, full.token_logps, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out.hidden_states[real], full.hidden_states[real], atol=1e-5, rtol=1e-5)
            loss(out).backward()
            for name, parameter in policy.named_parameters():
                torch.testing.assert_close(parameter.grad, expected[name], atol=1e-5, rtol=1e-4, msg=name)
    finally:
        policy.forward = original_forward
