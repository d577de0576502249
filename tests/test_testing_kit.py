"""zoo.testing: fake batches match the real pipeline, and the conformance check catches each kind
of contract violation (a correct algorithm passes; one deliberately broken variant per check fails
with a message naming what is wrong)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from zoo import Algorithm, Batch, ConfigError, Hyperparameters, LossOutput, RewardFunction, hookimpl
from zoo.rollout import Sampling
from zoo.rollout.batches import generation_batch
from zoo.testing import (ConformanceError, assert_algorithm_conforms, fake_batch, fake_rows, make_logprobs,
                         registered_by, tiny_model_and_tokenizer)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_model_and_tokenizer()[1]


def masked_text(tokenizer, batch: Batch, row: int) -> str:
    return tokenizer.decode(batch.input_ids[row][batch.loss_mask[row]])


# ----- fake data ---------------------------------------------------------------------------------


def test_pairwise_batch_puts_chosen_then_rejected_in_rows_b_k_plus_j(tokenizer):
    rows = fake_rows("pairwise", batch_size=2)
    batch = fake_batch("pairwise", tokenizer, batch_size=2)
    assert batch.group_size == 2 and batch.input_ids.shape[0] == 4
    for b, row in enumerate(rows):
        assert masked_text(tokenizer, batch, 2 * b) == row["chosen"] + "</s>"
        assert masked_text(tokenizer, batch, 2 * b + 1) == row["rejected"] + "</s>"
    assert batch.scores.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert batch.valid.all()


def test_unpaired_batch_holds_each_completion_then_its_mismatched_pair(tokenizer):
    """Slot 0: example b's completion (labels 1, 0, 1 in ``scores[:, 0]``); slot 1: the completion of
    example b − 1 (cyclically) after example b's prompt."""
    rows = fake_rows("unpaired", batch_size=3)
    batch = fake_batch("unpaired", tokenizer, batch_size=3)
    assert batch.group_size == 2 and batch.valid.all()
    for b, row in enumerate(rows):
        assert masked_text(tokenizer, batch, 2 * b) == row["completion"] + "</s>"
        assert masked_text(tokenizer, batch, 2 * b + 1) == rows[b - 1]["completion"] + "</s>"
    assert batch.scores[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_ranked_batch_has_padding_slots_and_the_best_response_in_different_slots(tokenizer):
    rows = fake_rows("ranked", batch_size=2, k=3)
    batch = fake_batch("ranked", tokenizer, batch_size=2, k=3)
    assert batch.valid.tolist() == [[True, True, True], [True, True, False]]
    assert batch.scores.tolist() == [[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]]
    assert batch.scores.argmax(-1).tolist() == [2, 0]
    assert masked_text(tokenizer, batch, 1 * 3 + 1) == rows[1]["responses"][1] + "</s>"


def test_sft_batch_scores_only_the_response_unless_training_on_the_prompt(tokenizer):
    row = fake_rows("sft", batch_size=1)[0]
    assert masked_text(tokenizer, fake_batch("sft", tokenizer, 1), 0) == row["completion"] + "</s>"
    whole = fake_batch("sft", tokenizer, 1, train_on_prompt=True)
    assert masked_text(tokenizer, whole, 0) == row["prompt"] + row["completion"] + "</s>"


def test_prompt_batch_left_pads_the_prompts(tokenizer):
    batch = fake_batch("prompt", tokenizer, batch_size=3)
    texts = [tokenizer.decode(ids[mask.bool()]) for ids, mask in zip(batch.prompt_ids, batch.prompt_attention_mask)]
    assert texts == [row["prompt"] for row in fake_rows("prompt", 3)]
    assert batch.prompt_attention_mask[:, -1].all()  # left padding: every prompt ends in the last column


def test_fake_rows_reject_impossible_group_sizes():
    with pytest.raises(ValueError, match="k = 2"):
        fake_rows("pairwise", k=3)
    with pytest.raises(ValueError, match="2 <= k <= 8"):
        fake_rows("ranked", k=9)
    with pytest.raises(ValueError, match="unknown data shape"):
        fake_rows("pairs")


def test_make_logprobs_agree_on_sum_mean_and_tokens():
    """Sums (−4, −6) over (4, 3) tokens: means (−1, −2); each scored token holds sum / |y|."""
    logps = make_logprobs([[-4.0, -6.0]], lengths=[[4, 3]])
    assert logps.mean.tolist() == [[-1.0, -2.0]]
    assert logps.token_logps.sum(-1).tolist() == pytest.approx([-4.0, -6.0])
    assert logps.mask.sum(-1).tolist() == [4, 3] and not logps.mask[:, 0].any()
    assert logps.token_logps[1].tolist() == pytest.approx([0.0, -2.0, -2.0, -2.0, 0.0])


def test_tiny_model_is_seeded():
    first, _ = tiny_model_and_tokenizer()
    second, _ = tiny_model_and_tokenizer()
    other, _ = tiny_model_and_tokenizer(seed=1)
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(first.state_dict()[weight], second.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], other.state_dict()[weight])


# ----- registration --------------------------------------------------------------------------------


class TwoThings:
    @hookimpl
    def zoo_register_algorithms(self, register):
        register(Margin)

    @hookimpl
    def zoo_register_rewards(self, register):
        register(RewardFunction("length", lambda prompts, responses: [float(len(r)) for r in responses]))


class Misspelt:
    @hookimpl
    def zoo_register_algorithm(self, register):  # the hook is zoo_register_algorithms
        register(Margin)


def test_registered_by_lists_what_a_plugin_registers_by_kind():
    assert registered_by(TwoThings()) == {"algorithms": ["margin"], "rewards": ["length"]}


def test_registered_by_rejects_a_hook_that_does_not_exist():
    with pytest.raises(ConformanceError, match="'zoo_register_algorithm', which is not a zoo hook "
                                               "\\(did you mean 'zoo_register_algorithms'\\?\\)"):
        registered_by(Misspelt())


# ----- conformance: correct algorithms pass -----------------------------------------------------------


@dataclass
class MarginArgs(Hyperparameters):
    beta: float = 1.0

    def validate(self) -> None:
        self.require_positive("beta")


class Margin(Algorithm):
    """L = −log σ(β (log π(y_w|x) − log π(y_l|x))): pairwise, no reference."""

    name = "margin"
    Args = MarginArgs
    data_shape = "pairwise"

    def margin(self, policy, reference):
        return policy.sum[:, 0] - policy.sum[:, 1]

    def loss(self, policy, reference, batch):
        margin = self.margin(policy, reference)
        return LossOutput(-F.logsigmoid(self.args.beta * margin), {"margin": margin.detach()})


class RefMargin(Margin):
    """The same with reference-normalised log-probs (DPO)."""

    name = "ref_margin"
    needs_reference = True

    def margin(self, policy, reference):
        ref = reference.sum
        return (policy.sum[:, 0] - ref[:, 0]) - (policy.sum[:, 1] - ref[:, 1])


class BestOfRanked(Algorithm):
    """L = logsumexp over valid responses − the best one's mean log-prob (a listwise softmax)."""

    name = "best_of_ranked"
    data_shape = "ranked"

    def loss(self, policy, reference, batch):
        logits = policy.mean.masked_fill(~batch.valid, -math.inf)
        best = batch.scores.masked_fill(~batch.valid, -math.inf).argmax(-1, keepdim=True)
        return LossOutput(logits.logsumexp(-1) - logits.gather(-1, best).squeeze(-1))


def test_a_correct_pairwise_algorithm_passes_every_check():
    report = assert_algorithm_conforms(Margin, bad_args=[{"beta": 0.0}, {"beta": -2.0}])
    assert report.checks == [
        "declarations", "hyperparameters", "state round trip", "purity",
        "responsiveness: raising the chosen response's log-prob",
        "responsiveness: raising the rejected response's log-prob",
        "training step loss", "training step backward", "training step optimiser step"]
    assert report.losses.shape == (2,)
    assert not report.skipped


def test_a_reference_algorithm_is_also_checked_against_the_cache():
    report = assert_algorithm_conforms(RefMargin, bad_args=[{"beta": float("nan")}], batch_size=3)
    assert "cached reference" in report.checks
    assert report.losses.tolist() == pytest.approx([math.log(2)] * 3, abs=1e-5)  # policy = reference at the start


class LabelledLikelihood(Algorithm):
    """L = ∓ log π(y|x) / |y|: raise desirable completions, lower undesirable ones (unpaired data)."""

    name = "labelled_likelihood"
    data_shape = "unpaired"

    def loss(self, policy, reference, batch):
        sign = 1 - 2 * batch.scores[:, 0]
        return LossOutput(sign * policy.mean[:, 0])


def test_a_correct_unpaired_algorithm_passes_both_label_checks():
    report = assert_algorithm_conforms(LabelledLikelihood)
    assert {"responsiveness: raising a desirable completion's log-prob",
            "responsiveness: raising an undesirable completion's log-prob"} <= set(report.checks)


def test_a_correct_ranked_algorithm_passes_the_padding_check():
    report = assert_algorithm_conforms(BestOfRanked, k=4)
    assert "padding slots ignored" in report.checks
    assert "responsiveness: raising the best-scored response's log-prob" in report.checks


def test_registered_algorithms_are_found_by_name():
    assert "responsiveness: raising the response's log-prob" in assert_algorithm_conforms("sft").checks
    with pytest.raises(ConfigError, match="unknown algorithm 'sfft'.*did you mean 'sft'"):
        assert_algorithm_conforms("sfft")


# ----- conformance: each violation is caught ------------------------------------------------------------


def broken(base: type[Algorithm], **overrides) -> type[Algorithm]:
    return type(f"Broken{base.__name__}", (base,), overrides)


@pytest.mark.parametrize("algorithm, message", [
    (broken(Margin, loss=lambda self, p, r, b: LossOutput((p.sum[:, 0] - p.sum[:, 1]).mean())),
     r"unreduced, of shape \[B\] = \(2,\); got \(\)"),
    (broken(Margin, margin=lambda self, p, r: p.sum[:, 1] - p.sum[:, 0]),
     "raising the chosen response's log-prob should lower a pairwise loss"),
    (broken(Margin, margin=lambda self, p, r: (p.sum[:, 0] - p.sum[:, 1]).detach()),
     "the losses do not depend on the policy"),
    (broken(Margin, loss=lambda self, p, r, b: LossOutput(torch.log(p.sum[:, 0]))), "losses are not finite"),
    (broken(Margin, loss=lambda self, p, r, b: LossOutput(-p.sum[:, 0], {"per_response": p.sum})),
     r"metric 'per_response' must be a \[B\] tensor"),
    (broken(Margin, margin=lambda self, p, r: p.sum.mul_(2)[:, 0] - p.sum[:, 1]), "modified its input tensors"),
    (broken(RefMargin, margin=lambda self, p, r: (p.sum[:, 0] - p.sum[:, 1])
            - r.token_logps.sum(-1).view(-1, 2) @ torch.tensor([1.0, -1.0])),
     "cached reference values \\(sequence sums only, token_logps None\\) made loss\\(\\) raise"),
    (broken(BestOfRanked, loss=lambda self, p, r, b: LossOutput(  # padding slots join the logsumexp
        p.mean.logsumexp(-1) - p.mean.gather(-1, b.scores.masked_fill(~b.valid, -1).argmax(-1, keepdim=True))[:, 0])),
     "changing the log-probs of padding slots"),
    (broken(LabelledLikelihood, loss=lambda self, p, r, b: LossOutput(-p.mean[:, 0])),  # every label desirable
     "raising an undesirable completion's log-prob should raise an unpaired loss"),
    (broken(Margin, data_shape="prompt"), "prompt-only data has no responses to score"),
    (broken(Margin, generates_online=True), "make_experience\\(\\) is not implemented"),
    (broken(Margin, needs_reference="yes"), "needs_reference must be True or False"),
])
def test_each_contract_violation_is_reported(algorithm, message):
    with pytest.raises(ConformanceError, match=message):
        assert_algorithm_conforms(algorithm)


@dataclass
class NoCheckArgs(Hyperparameters):
    beta: float = 1.0


@dataclass
class VagueArgs(Hyperparameters):
    beta: float = 1.0

    def validate(self) -> None:
        if self.beta <= 0:
            raise ConfigError("must be positive")


@dataclass
class WrongErrorArgs(Hyperparameters):
    beta: float = 1.0

    def validate(self) -> None:
        if self.beta <= 0:
            raise ValueError("beta must be positive")


@dataclass
class BadDefaultArgs(MarginArgs):
    beta: float = 0.0


@pytest.mark.parametrize("args_class, message", [
    (NoCheckArgs, r"\{'beta': -1.0\} was accepted"),
    (VagueArgs, "does not name the key"),
    (WrongErrorArgs, "raised ValueError instead of zoo.ConfigError"),
    (BadDefaultArgs, "the default Args do not validate"),
])
def test_hyperparameter_validation_is_checked(args_class, message):
    with pytest.raises(ConformanceError, match=message):
        assert_algorithm_conforms(broken(Margin, Args=args_class), bad_args=[{"beta": -1.0}])


# ----- online algorithms -------------------------------------------------------------------------------


@dataclass
class RWRArgs(Hyperparameters):
    #: τ, the temperature of the reward weights.
    temperature: float = 1.0

    def validate(self) -> None:
        self.require_positive("temperature")


class RewardWeightedRegression(Algorithm):
    """Reward-weighted regression (Peters & Schaal 2007) on fresh samples: w = B · softmax(r / τ),
    L = −w · log π(y|x) / |y|."""

    name = "rwr"
    Args = RWRArgs
    data_shape = "prompt"
    needs_reward = True
    generates_online = True

    def make_experience(self, ctx, batch):
        generation = ctx.generate(batch, Sampling(max_new_tokens=6), seed=0)
        rewards = ctx.reward.score(batch.prompts, generation.texts)
        weights = len(rewards) * torch.softmax(rewards / self.args.temperature, 0)
        return generation_batch(generation, batch.prompts, pad_id=ctx.tokenizer.pad_token_id,
                                extras={"weights": weights, "rewards": rewards})

    def loss(self, policy, reference, batch):
        return LossOutput(-batch.extras["weights"] * policy.mean[:, 0], {"reward": batch.extras["rewards"]})


def test_an_online_algorithm_runs_make_experience_with_the_given_reward():
    seen = []

    def vowels(prompts, responses):
        seen.extend(responses)
        return [float(sum(c in "aeiou" for c in r)) for r in responses]

    report = assert_algorithm_conforms(RewardWeightedRegression, bad_args=[{"temperature": 0.0}],
                                       batch_size=3, reward=vowels)
    assert len(seen) == 3
    assert report.checks[-4:] == ["make_experience", "minibatch 1 loss", "minibatch 1 backward",
                                  "minibatch 1 optimiser step"]
    assert "responsiveness" in report.skipped


def test_an_online_algorithm_gets_a_default_reward():
    assert "make_experience" in assert_algorithm_conforms(RewardWeightedRegression).checks


def test_an_online_algorithm_must_return_a_batch():
    algorithm = broken(RewardWeightedRegression, make_experience=lambda self, ctx, batch: batch.input_ids)
    with pytest.raises(ConformanceError, match="returned Tensor, expected zoo.Batch"):
        assert_algorithm_conforms(algorithm)
