"""Online DPO: labelling (best vs worst, ties dropped), the DPO / IPO losses on hand-worked numbers,
an experience step against independent forward passes, and the iterative mode's per-round snapshot."""
from __future__ import annotations

import math

import pytest
import torch

from zoo import ExperienceContext, SequenceLogProbs
from zoo.batch import Batch
from zoo.forward.logprobs import sequence_logprobs
from zoo.losses import dpo_loss as preference_loss
from zoo.rewards.sources import FunctionReward, RewardFunction
from zoo.rollout.batches import encode_prompts
from zoo.testing import assert_algorithm_conforms
from zoo.tiny import tiny_model
from zoo_plugins.algorithms.online_dpo import OnlineDPO, OnlineDPOArgs, label_pairs
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)


def test_labels_best_against_worst_and_marks_ties():
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 1.0, 1.0, 5.0], [0.0, -1.0, 0.0, 0.0]])
    chosen, rejected, keep = label_pairs(scores)
    assert chosen.tolist() == [1, 0, 0, 0]  # the first of equal best scores
    assert rejected.tolist() == [3, 0, 1, 1]  # the first of equal worst scores
    assert keep.tolist() == [True, False, True, True]  # all four equal: no preference


def test_dpo_and_ipo_losses_by_hand():
    """log π(y_w) = −1, log π(y_l) = −2, both −1.5 under the reference: h = 0.5 + 0.5 = 1.
    DPO at β = 0.1: −log σ(0.1) = log(1 + e^−0.1) = 0.6443967; IPO at τ = 0.25: (1 − 2)² = 1."""
    chosen = torch.tensor([-1.0], requires_grad=True)
    rejected = torch.tensor([-2.0], requires_grad=True)
    ref = torch.tensor([-1.5])
    dpo = preference_loss(chosen, rejected, ref, ref, beta=0.1)
    assert dpo.losses.item() == pytest.approx(math.log1p(math.exp(-0.1)), abs=1e-6)
    assert dpo.metrics["reward_margin"].item() == pytest.approx(0.1)
    grad_chosen, grad_rejected = torch.autograd.grad(dpo.losses.sum(), [chosen, rejected])
    assert grad_chosen.item() == pytest.approx(-0.1 * (1 - 1 / (1 + math.exp(-0.1))), abs=1e-6)
    assert grad_rejected.item() == pytest.approx(-grad_chosen.item(), abs=1e-7)
    ipo = preference_loss(chosen, rejected, ref, ref, beta=0.1, loss="ipo", tau=0.25)
    assert ipo.losses.item() == pytest.approx(1.0)


@pytest.fixture
def setting(tokenizer):
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    reference = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                           num_key_value_heads=1, seed=1)
    # "flat" always scores 0 (a tie); other prompts score a response by its characters
    score = lambda prompts, responses: [0.0 if p == "flat" else float(sum(map(ord, r)) % 97)  # noqa: E731
                                        for p, r in zip(prompts, responses)]
    texts = ["Review the soup:", "flat", "Hi"]
    ids, mask = encode_prompts(tokenizer, texts)
    batch = Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool),
                  group_size=1, valid=torch.ones(3, 1, dtype=torch.bool), prompt_ids=ids,
                  prompt_attention_mask=mask, prompts=texts)
    return policy, reference, FunctionReward(RewardFunction("chars", score)), score, batch


def test_experience_pairs_best_over_worst_and_drops_ties(setting, tokenizer):
    policy, reference, reward, score, batch = setting
    algorithm = OnlineDPO(OnlineDPOArgs(samples_per_prompt=3, max_new_tokens=6))
    ctx = ExperienceContext.for_run(policy, tokenizer, reference=reference, reward=reward)
    with torch.no_grad():
        e = algorithm.make_experience(ctx, batch)
        ref = sequence_logprobs(reference, e.input_ids, e.attention_mask, e.loss_mask, 2)
    assert e.group_size == 2 and e.prompts == ["Review the soup:", "Hi"]  # "flat" tied and was dropped
    assert ctx.metrics["tied_fraction"].item() == pytest.approx(1 / 3)
    texts = [tokenizer.decode(row[m], skip_special_tokens=True) for row, m in zip(e.input_ids, e.loss_mask)]
    scores = torch.tensor(score([p for p in e.prompts for _ in range(2)], texts)).view(2, 2)
    assert (scores[:, 0] > scores[:, 1]).all()  # chosen first
    torch.testing.assert_close(e.reference_logps, ref.sum)
    validation = algorithm.make_experience(
        ExperienceContext.for_run(policy, tokenizer, reference=reference, reward=reward, training=False), batch)
    assert validation.prompts == batch.prompts  # validation keeps every prompt


def test_iterative_mode_samples_from_a_snapshot_taken_once_per_round(setting, tokenizer):
    policy, reference, reward, _, batch = setting
    algorithm = OnlineDPO(OnlineDPOArgs(mode="iterative", max_new_tokens=4))
    start = policy.lm_head.weight.detach().clone()

    def step(epoch):
        ctx = ExperienceContext.for_run(policy, tokenizer, reference=reference, reward=reward, epoch=epoch)
        algorithm.make_experience(ctx, batch)
        return algorithm.snapshot.lm_head.weight

    assert torch.equal(step(0), start)
    with torch.no_grad():
        policy.lm_head.weight.add_(1.0)  # the policy trains during the round
    assert torch.equal(step(0), start)  # same round: the pairs still come from the round's start
    assert torch.equal(step(1), policy.lm_head.weight)  # a new round regenerates from the current policy
    assert algorithm.state_dict() == {"round": 1}
    online = OnlineDPO(OnlineDPOArgs(max_new_tokens=4))
    online.make_experience(ExperienceContext.for_run(policy, tokenizer, reference=reference, reward=reward), batch)
    assert online.snapshot is None


def _spread(prompts, responses):
    return [float(sum(map(ord, r)) % 97) for r in responses]


def test_conforms():
    torch.manual_seed(0)
    for args in ({"max_new_tokens": 8}, {"loss": "ipo", "mode": "iterative", "samples_per_prompt": 4,
                                         "max_new_tokens": 8}):
        assert_algorithm_conforms("online_dpo", bad_args=[{"beta": 0.0}, {"samples_per_prompt": 1},
                                                          {"mode": "offline"}, {"tau": -1.0}],
                                  args=args, reward=_spread)


def test_reward_accuracy_counts_a_tie_as_one_half():
    """A policy equal to its reference gives equal implicit rewards: a tie scores 1/2
    (:func:`zoo.losses.pair_accuracy`), not 0."""
    sums = torch.tensor([[-3.0, -2.0], [-1.0, -4.0]])
    values = SequenceLogProbs(None, torch.ones(4, 3, dtype=torch.bool), sums, sums, torch.ones(2, 2))
    out = OnlineDPO(OnlineDPOArgs()).loss(values, values, None)
    assert out.metrics["reward_accuracy"].tolist() == [0.5, 0.5]
