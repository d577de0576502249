"""Preference, perplexity and generation suites against independent computations."""
from __future__ import annotations

import json
import math

import pytest
import torch

from zoo.errors import ConfigError, DataError
from zoo.eval import EvalContext, make_suites
from zoo.eval.results import ratio_metric
from zoo.rewards.sources import FunctionReward, RewardFunction
from zoo.tiny import tiny_model

PAIRS = [
    {"prompt": "Review: the film", "chosen": " was great.", "rejected": " was awful and far too long."},
    {"prompt": "Review: the soup", "chosen": " was warm and tasty.", "rejected": " cold."},
    {"prompt": "Review: the book", "chosen": " is fine.", "rejected": " is poor."},
]


def small_model(tokenizer, seed):
    return tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1,
                      seed=seed).eval()


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    return path


def response_logp(model, tokenizer, prompt: str, response: str) -> float:
    """log π(response + EOS | prompt) from one full forward (the tiny tokenizer adds no BOS)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logp = model(ids).logits[0].float().log_softmax(-1)
    start = len(prompt_ids)
    return sum(float(logp[t - 1, ids[0, t]]) for t in range(start, ids.shape[1]))


def length_reward(prompts, responses):
    return [float(len(r)) for r in responses]


def test_implicit_reward_accuracy_and_margin(tokenizer, pairs_file):
    policy, reference = small_model(tokenizer, 0), small_model(tokenizer, 1)
    suite = make_suites(["preference"], {"preference": {"data": str(pairs_file), "beta": 0.5}})[0]
    suite.load()
    result = suite.run(policy, tokenizer, EvalContext(batch_size=2, reference=reference))
    assert result.settings["scorer"] == "implicit"
    margins = []
    for pair, sample in zip(PAIRS, result.samples):
        chosen = 0.5 * (response_logp(policy, tokenizer, pair["prompt"], pair["chosen"])
                        - response_logp(reference, tokenizer, pair["prompt"], pair["chosen"]))
        rejected = 0.5 * (response_logp(policy, tokenizer, pair["prompt"], pair["rejected"])
                          - response_logp(reference, tokenizer, pair["prompt"], pair["rejected"]))
        assert sample["chosen"] == pytest.approx(chosen, abs=1e-4)
        assert sample["rejected"] == pytest.approx(rejected, abs=1e-4)
        margins.append(chosen - rejected)
    assert result.metrics["margin"].value == pytest.approx(sum(margins) / 3, abs=1e-4)
    assert result.metrics["accuracy"].value == pytest.approx(sum(m > 0 for m in margins) / 3)


def test_reward_scorer_and_ties(tokenizer, pairs_file):
    """Length reward: pair 1 prefers the longer rejected (0), pair 2 the longer chosen (1), pair 3
    has equal lengths (a tie, ½): accuracy (0 + 1 + ½)/3 = .5; margins 11−28, 20−6, 9−9."""
    suite = make_suites(["preference"], {"preference": {"data": str(pairs_file)}})[0]
    suite.load()
    reward = FunctionReward(RewardFunction("length", length_reward))
    result = suite.run(None, tokenizer, EvalContext(batch_size=2, reward=reward))
    assert result.settings["scorer"] == "reward"
    assert [s["margin"] for s in result.samples] == [11 - 28, 20 - 6, 9 - 9]
    assert result.metrics["accuracy"].value == pytest.approx(0.5)
    # A policy equal to its reference ties every pair.
    model = small_model(tokenizer, 0)
    forwards = []
    model.get_input_embeddings().register_forward_hook(lambda module, args, out: forwards.append(args[0].shape[0]))
    same = suite.run(model, tokenizer, EvalContext(reference=model, batch_size=16))
    assert same.metrics["accuracy"].value == 0.5 and same.metrics["margin"].value == 0
    assert forwards.count(2 * len(PAIRS)) == 1  # one batch of 6: the reference pass is the policy pass, not a second
    with pytest.raises(ConfigError, match="needs --reference"):
        make_suites(["preference"], {"preference": {"scorer": "implicit"}})[0].run(model, tokenizer, EvalContext())


def test_malformed_pairs_name_file_row_and_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(PAIRS[0]) + "\n" + json.dumps({"prompt": "p", "chosen": "a"}) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl, row 2, field 'rejected'"):
        make_suites(["preference"], {"preference": {"data": str(path)}})[0].load()


def test_perplexity_matches_a_direct_computation(tokenizer, pairs_file):
    model = small_model(tokenizer, 0)
    suite = make_suites(["perplexity"], {"perplexity": {"data": str(pairs_file)}})[0]
    suite.load()
    result = suite.run(model, tokenizer, EvalContext(batch_size=2))
    nll = [-response_logp(model, tokenizer, p["prompt"], p["chosen"]) for p in PAIRS]
    tokens = [len(p["chosen"].encode()) + 1 for p in PAIRS]  # bytes + EOS
    assert [s["tokens"] for s in result.samples] == tokens
    assert result.metrics["nll"].value == pytest.approx(sum(nll) / sum(tokens), abs=1e-5)
    assert result.metrics["perplexity"].value == pytest.approx(math.exp(sum(nll) / sum(tokens)), rel=1e-5)


def test_ratio_metric_on_hand_numbers():
    """a = (2, 4, 3), b = (1, 2, 2): r = 9/5 = 1.8; residuals a − r·b = (.2, .4, −.6), squares sum
    .56; se = √(3/2 · .56) / 5 = .183303."""
    metric = ratio_metric([2, 4, 3], [1, 2, 2])
    assert metric.value == pytest.approx(1.8) and metric.stderr == pytest.approx(0.183303, abs=1e-6)


def test_generation_reward_win_rate_and_kl(tokenizer, pairs_file):
    from zoo.rollout.batches import encode_prompts, right_padded
    from zoo.rollout.sampler import Sampler

    policy, reference = small_model(tokenizer, 0), small_model(tokenizer, 1)
    options = {"generation": {"data": str(pairs_file), "samples_per_prompt": 2, "max_new_tokens": 5}}
    suite = make_suites(["generation"], options)[0]
    suite.load()
    reward = FunctionReward(RewardFunction("length", length_reward))
    result = suite.run(policy, tokenizer, EvalContext(batch_size=2, reference=reference, reward=reward, seed=3))
    prompts = [p["prompt"] for p in PAIRS]
    # Independent KL: sample the first batch again with the same seed, then score both models with a
    # plain forward pass of the right-padded rows.
    ids, mask = encode_prompts(tokenizer, prompts[:2], 256)
    generation = Sampler(policy, tokenizer)(ids, mask, max_new_tokens=5, samples_per_prompt=2, seed=3)
    input_ids, attention_mask, loss_mask, _ = right_padded(generation, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        def logps(model):
            logp = model(input_ids=input_ids, attention_mask=attention_mask).logits.float().log_softmax(-1)
            token = logp[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
            return (token * loss_mask[:, 1:]).sum(-1)

        kl = (logps(policy) - logps(reference)).view(2, 2)
    for i in range(2):
        assert result.samples[i]["kl"] == pytest.approx(kl[i].tolist(), abs=1e-3)
        assert result.samples[i]["responses"] == generation.texts[2 * i: 2 * i + 2]
        assert result.samples[i]["rewards"] == [float(len(t)) for t in generation.texts[2 * i: 2 * i + 2]]
    per_prompt_kl = [sum(s["kl"]) / 2 for s in result.samples]
    assert result.metrics["kl"].value == pytest.approx(sum(per_prompt_kl) / 3, abs=1e-5)
    assert result.metrics["kl"].n == 3 and result.metrics["kl"].ci95 is not None
    per_prompt_reward = [sum(s["rewards"]) / 2 for s in result.samples]
    assert result.metrics["reward"].value == pytest.approx(sum(per_prompt_reward) / 3)
    wins = [w for s in result.samples for w in s["wins"]]
    assert all(w == (1.0 if a > b else 0.5 if a == b else 0.0) for w, a, b in
               zip(wins, [r for s in result.samples for r in s["rewards"]],
                   [r for s in result.samples for r in s["baseline_rewards"]]))
    # Against itself, with the same seeds, every sample ties and the KL is zero.
    same = suite.run(policy, tokenizer, EvalContext(batch_size=2, reference=policy, reward=reward, seed=3))
    assert same.metrics["win_rate"].value == 0.5
    assert abs(same.metrics["kl"].value) < 1e-4


def test_generation_needs_a_reward_or_reference(tokenizer, pairs_file):
    suite = make_suites(["generation"], {"generation": {"data": str(pairs_file), "temperature": 0.7}})[0]
    suite.load(limit=1)
    model = small_model(tokenizer, 0)
    with pytest.raises(ConfigError, match="needs a reward"):
        suite.run(model, tokenizer, EvalContext())
    tempered = suite.run(model, tokenizer, EvalContext(reference=model))
    assert "kl" not in tempered.metrics and "temperature 1" in tempered.settings["skipped_metrics"]["kl"]
