"""The GRPO family's options and presets: GSPO, CISPO, REINFORCE++ (-baseline), KL estimator and
placement, dynamic sampling with refills, over-long and missing-EOS shaping."""
from __future__ import annotations

import math

import pytest
import torch

from zoo import ConfigError, ExperienceContext
from zoo.batch import Batch
from zoo.forward.logprobs import sequence_logprobs
from zoo.losses import RewardShaping, batch_normalised_advantages, shape_rewards
from zoo.models import frozen
from zoo.registry import get_registry
from zoo.rewards.sources import FunctionReward, RewardFunction
from zoo.rollout.batches import encode_prompts
from zoo.testing import assert_algorithm_conforms
from zoo.tiny import tiny_model
from zoo_plugins.algorithms.grpo import GRPO, GRPOArgs, ReinforcePP, ReinforcePPArgs, grpo_loss
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)

PRESETS = ["gspo", "cispo", "reinforce_pp", "reinforce_pp_baseline"]


def _spread(prompts, responses):
    return [float(sum(map(ord, r)) % 97) for r in responses]


def _prompts(tokenizer, texts):
    ids, mask = encode_prompts(tokenizer, texts)
    return Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool), group_size=1,
                 valid=torch.ones(len(texts), 1, dtype=torch.bool), prompt_ids=ids, prompt_attention_mask=mask,
                 prompts=texts)


def _policy(tokenizer):
    return tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)


def test_every_variant_is_registered_with_its_papers_defaults():
    registry = get_registry()
    algorithms = {name: registry.algorithm(name) for name in PRESETS}
    assert algorithms["gspo"].Args().ratio_level == "sequence"
    assert algorithms["cispo"].Args().policy_loss == "cispo"
    assert algorithms["reinforce_pp"].Args().advantages == "batch"
    assert algorithms["reinforce_pp"].Args().kl_placement == "reward"
    baseline = algorithms["reinforce_pp_baseline"].Args()
    assert (baseline.advantages, baseline.kl_estimator, baseline.kl_placement) == ("group_batch", "k2", "loss")


@pytest.mark.parametrize("name", PRESETS)
def test_conforms(name):
    torch.manual_seed(0)
    assert_algorithm_conforms(name, args={"max_new_tokens": 8, "kl_coef": 0.02}, reward=_spread)


def test_refilling_conforms():
    torch.manual_seed(0)
    assert_algorithm_conforms("grpo", args={"max_new_tokens": 8, "aggregation": "dapo", "refill_rounds": 2,
                                            "kl_estimator": "k2"}, reward=_spread)


@pytest.mark.parametrize("bad, key", [
    ({"aggregation": "dr_grpo", "advantages": "batch"}, "advantages"),
    ({"policy_loss": "cispo", "ratio_level": "sequence"}, "ratio_level"),
    ({"kl_estimator": "k1"}, "kl_estimator"),
    ({"refill_rounds": 1}, "refill_rounds"),
    ({"refill_rounds": -1, "aggregation": "dapo"}, "refill_rounds"),
    ({"overlong_window": 64, "max_new_tokens": 32}, "overlong_window"),
    ({"missing_eos_penalty": -1.0}, "missing_eos_penalty"),
    ({"samples_per_prompt": 1}, "samples_per_prompt"),
])
def test_unsupported_combinations_are_errors_naming_the_key(bad, key):
    with pytest.raises(ConfigError, match=f"algorithm_args.{key}"):
        GRPO.parse_args(bad)


def test_one_sample_per_prompt_is_allowed_with_batch_advantages():
    assert GRPO.parse_args({"advantages": "batch", "samples_per_prompt": 1}).samples_per_prompt == 1
    with pytest.raises(ConfigError, match="algorithm_args.drop_equal_groups"):
        GRPO.parse_args({"advantages": "batch", "samples_per_prompt": 1, "aggregation": "dapo"})
    torch.manual_seed(0)
    assert_algorithm_conforms("reinforce_pp", args={"max_new_tokens": 8, "samples_per_prompt": 1}, reward=_spread)


def test_batch_normalised_advantages_by_hand():
    """Rewards (1, 2 | 3, 6). batch: mean 3, population variance (4 + 1 + 0 + 9)/4 = 3.5, so
    (−2, −1, 0, 3)/√3.5. group_batch: group means 1.5, 4.5 leave (−0.5, 0.5, −1.5, 1.5), mean 0,
    variance (0.25 + 0.25 + 2.25 + 2.25)/4 = 1.25, so those over √1.25."""
    rewards = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    torch.testing.assert_close(batch_normalised_advantages(rewards, subtract_group_mean=False),
                               torch.tensor([[-2.0, -1.0], [0.0, 3.0]]) / math.sqrt(3.5))
    torch.testing.assert_close(batch_normalised_advantages(rewards, subtract_group_mean=True),
                               torch.tensor([[-0.5, 0.5], [-1.5, 1.5]]) / math.sqrt(1.25))


def test_shaping_by_hand():
    """L_max = 8, window 4 (ramp from 4 tokens), c = 2: lengths 2, 7, 8 → 0, −2·3/4, −2; P = 0.5
    on the unfinished third: total (1, 1 − 1.5, 1 − 2 − 0.5)."""
    shaping = RewardShaping(missing_eos_penalty=0.5, overlong_window=4, overlong_penalty=2.0)
    scores = shape_rewards(torch.ones(3), torch.tensor([True, True, False]), torch.tensor([2, 7, 8]), shaping, 8)
    torch.testing.assert_close(scores, torch.tensor([1.0, -0.5, -1.5]))
    assert torch.equal(shape_rewards(torch.ones(3), torch.tensor([True, True, False]), torch.tensor([2, 7, 8]),
                                     RewardShaping(), 8), torch.ones(3))


def test_gspo_and_cispo_through_the_grpo_loss():
    """One response, log ρ = (0.4, −0.2), Â = +1, ε = 0.05 (ε_high 0.05):
    GSPO: s = e^0.1 > 1.05, clipped: loss −1.05, no gradient; clip_frac 1.
    CISPO (ε_low 1, ε_high 0.05): weights sg[clip(ρ)] = (1.05, e^−0.2); the gradient of the
    sequence mean is −(1.05, 0.8187308)/2, nonzero on the clipped token; clip_frac 1/2."""
    mask = torch.tensor([[False, True, True]])
    old = torch.tensor([[0.0, -1.0, -2.0]])
    logps = (old + torch.tensor([[0.0, 0.4, -0.2]])).requires_grad_(True)
    gspo = grpo_loss(logps, old, torch.tensor([1.0]), mask, aggregation="grpo", clip_low=0.05, clip_high=0.05,
                     ratio_level="sequence")
    assert gspo.losses.item() == pytest.approx(-1.05) and gspo.metrics["clip_frac"].item() == 1
    assert torch.autograd.grad(gspo.losses.sum(), logps)[0].abs().max() == 0
    cispo = grpo_loss(logps, old, torch.tensor([1.0]), mask, aggregation="grpo", clip_low=1.0, clip_high=0.05,
                      policy_loss="cispo")
    (grad,) = torch.autograd.grad(cispo.losses.sum(), logps)
    torch.testing.assert_close(grad, torch.tensor([[0.0, -1.05 / 2, -math.exp(-0.2) / 2]]))
    assert cispo.metrics["clip_frac"].item() == 0.5


def test_kl_estimator_in_the_loss_by_hand():
    """Â = 0, log π = −1, log π_ref = −1.5, β = 0.1: k2 = ½·0.25 → loss 0.0125, ∂/∂log π = β·0.5 = 0.05;
    k3 → β(e^−0.5 + 0.5 − 1), ∂/∂log π = β(1 − e^−0.5) = 0.0393469."""
    mask = torch.tensor([[False, True]])
    reference = torch.tensor([[0.0, -1.5]])
    for estimator, value, slope in (("k2", 0.0125, 0.05), ("k3", 0.1 * (math.exp(-0.5) - 0.5),
                                                           0.1 * (1 - math.exp(-0.5)))):
        logps = torch.tensor([[0.0, -1.0]], requires_grad=True)
        out = grpo_loss(logps, logps.detach(), torch.zeros(1), mask, aggregation="grpo", clip_low=0.2, clip_high=0.2,
                        ref_logps=reference, kl_coef=0.1, kl_estimator=estimator)
        assert out.losses.item() == pytest.approx(value, abs=1e-7)
        assert torch.autograd.grad(out.losses.sum(), logps)[0][0, 1].item() == pytest.approx(slope, abs=1e-6)


def test_reinforce_pp_folds_the_kl_into_the_reward_and_normalises_over_the_batch(tokenizer):
    """Independently: scores minus β Σ_t (log π_old − log π_ref) from separate forward passes, then
    whitened over the batch; the experience's advantages match (recorded log-probs agree with a
    forward pass to float error)."""
    policy = _policy(tokenizer)
    reference = _policy(tokenizer)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    reward = FunctionReward(RewardFunction("chars", _spread))
    algorithm = ReinforcePP(ReinforcePPArgs(samples_per_prompt=3, max_new_tokens=6, kl_coef=0.5))
    ctx = ExperienceContext.for_run(policy, tokenizer, reference=frozen(reference), reward=reward)
    torch.manual_seed(0)
    with torch.no_grad():
        experience = algorithm.make_experience(ctx, _prompts(tokenizer, ["Review the soup:", "Review the film:"]))
        args = (experience.input_ids, experience.attention_mask, experience.loss_mask, 1)
        kl = sequence_logprobs(policy, *args).sum[:, 0] - sequence_logprobs(reference, *args).sum[:, 0]
    texts = [tokenizer.decode(row[m], skip_special_tokens=True)
             for row, m in zip(experience.input_ids, experience.loss_mask)]
    rewards = torch.tensor(_spread(None, texts)) - 0.5 * kl
    expected = (rewards - rewards.mean()) / rewards.std(unbiased=False)
    torch.testing.assert_close(experience.extras["advantages"], expected, atol=1e-4, rtol=1e-4)
    assert abs(float(ctx.metrics["kl_ref"])) > 1e-3  # the penalty is really there
    torch.testing.assert_close(torch.as_tensor(ctx.metrics["kl_ref"]), kl.mean(), atol=1e-4, rtol=1e-4)


class _FlatThenSpread:
    """A reward that scores every response 0 for its first ``flat_calls`` calls, then tells them apart."""

    def __init__(self, flat_calls):
        self.flat_calls, self.calls = flat_calls, 0

    def __call__(self, prompts, responses):
        self.calls += 1
        return [0.0] * len(responses) if self.calls <= self.flat_calls else _spread(prompts, responses)


@pytest.mark.parametrize("flat_calls, refill_rounds, calls, groups, rounds", [
    (1, 0, 1, 0, None),   # no refill: every group dropped
    (1, 2, 2, 2, 1.0),    # one refill round restores both groups, then it stops
    (9, 2, 3, 0, 2.0),    # bounded: two extra rounds, still flat, nothing to train on
])
def test_dynamic_sampling_refills_dropped_groups_within_its_bound(tokenizer, flat_calls, refill_rounds, calls,
                                                                 groups, rounds):
    score = _FlatThenSpread(flat_calls)
    algorithm = GRPO(GRPOArgs(aggregation="dapo", samples_per_prompt=4, max_new_tokens=6, kl_coef=0.0,
                              refill_rounds=refill_rounds))
    ctx = ExperienceContext.for_run(_policy(tokenizer), tokenizer, reward=FunctionReward(RewardFunction("s", score)))
    torch.manual_seed(0)
    with torch.no_grad():
        experience = algorithm.make_experience(ctx, _prompts(tokenizer, ["Review the soup:", "Review the film:"]))
    assert score.calls == calls
    assert experience.input_ids.shape[0] == 4 * groups
    assert float(ctx.metrics["kept_groups"]) == 0.0
    assert (None if "refill_rounds" not in ctx.metrics else float(ctx.metrics["refill_rounds"])) == rounds
    if groups:
        assert float(ctx.metrics["refilled_groups"]) == groups
        assert sorted(set(experience.prompts)) == ["Review the film:", "Review the soup:"]
        assert experience.extras["advantages"].abs().sum() > 0
