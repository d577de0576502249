"""The reward-model algorithm: Bradley–Terry and regression losses, scoring at the last token, and
a trained model that ranks held-out pairs labelled by tiny_sentiment and drives PPO end to end."""
from __future__ import annotations

import json
import math
import random

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from zoo.config import ModelConfig, RewardConfig, TinyModelConfig, load_config
from zoo.forward import sequence_scores
from zoo.models import load_scalar_model
from zoo.rewards.loading import load_reward_source
from zoo.rewards.model import SCORE_MEAN
from zoo.training_guard import train
from zoo_plugins.algorithms.reward import bradley_terry_loss, regression_loss
from zoo_plugins.datasets.tiny_reviews import NEGATIVE, POSITIVE, SUBJECTS, sentiment_score
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_bradley_terry_pair():
    """One pair, r_w = 1.0, r_l = 0.0: L = −log σ(1) = 0.31326."""
    out = bradley_terry_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[True, True]]))
    assert out.losses.item() == pytest.approx(0.3132617, abs=1e-6)
    assert out.metrics["accuracy"].item() == 1.0
    assert out.metrics["margin"].item() == pytest.approx(1.0)


def test_bradley_terry_ranked_with_tie_and_invalid_slot():
    """Example 0: scores (2, 1, 1, pad), rewards (0.5, 1.0, −0.5, 9). Ordered pairs: (0,1) with
    r diff −0.5 → −log σ(−0.5) = 0.97408; (0,2) with diff 1.0 → 0.31326; (1,2) is a tie, the pad
    slot is ignored. Loss = (0.97408 + 0.31326)/2 = 0.64367.
    Example 1: scores (0, 3), rewards (0, 2): one pair (1,0) with diff 2 → −log σ(2) = 0.12693.
    Accuracy over the batch's 3 pairs: 2/3; margin (−0.5 + 1.0 + 2.0)/3 = 0.83333."""
    rewards = torch.tensor([[0.5, 1.0, -0.5, 9.0], [0.0, 2.0, 0.0, 0.0]], requires_grad=True)
    scores = torch.tensor([[2.0, 1.0, 1.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = bradley_terry_loss(rewards, scores, valid)
    expected = [(-log_sigmoid(-0.5) - log_sigmoid(1.0)) / 2, -log_sigmoid(2.0)]
    assert out.losses.tolist() == pytest.approx(expected, abs=1e-6)
    assert expected[0] == pytest.approx(0.64367, abs=1e-5)
    assert out.metrics["accuracy"].item() == pytest.approx(2 / 3)
    assert out.metrics["margin"].item() == pytest.approx(2.5 / 3)
    out.losses.sum().backward()
    assert rewards.grad[0, 3] == 0  # the padding slot gets no gradient


def test_regression_loss():
    """Rewards (1, 0, 5[pad]) vs scores (2, 0, 0): MSE over valid slots = (1 + 0)/2 = 0.5."""
    out = regression_loss(torch.tensor([[1.0, 0.0, 5.0]]), torch.tensor([[2.0, 0.0, 0.0]]),
                          torch.tensor([[True, True, False]]))
    assert out.losses.tolist() == [0.5]
    assert out.metrics["accuracy"].item() == 1.0  # 1 > 0 matches 2 > 0


def test_regression_loss_is_squared_not_absolute_error():
    """Rewards (3, 0.5) vs scores (1, 0): squared errors (4 + 0.25)/2 = 2.125 (absolute would be 1.25)."""
    out = regression_loss(torch.tensor([[3.0, 0.5]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[True, True]]))
    assert out.losses.tolist() == [pytest.approx(2.125)]


def test_accuracy_counts_a_tied_prediction_as_one_half():
    """Scores (1, 0) with equal predicted rewards: the model does not order the pair, so it counts one half
    (zoo.losses.pair_accuracy); with a correctly ordered second pair the accuracy is (0.5 + 1) / 2 = 0.75.
    ``>=`` would give 1.0 and ``>`` 0.5."""
    for loss in (bradley_terry_loss, regression_loss):
        out = loss(torch.tensor([[0.7, 0.7], [2.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
                   torch.ones(2, 2, dtype=torch.bool))
        assert out.metrics["accuracy"].item() == pytest.approx(0.75)


def test_with_pad_equal_to_eos_the_head_reads_the_token_before_the_eos(tokenizer):
    """As the module docstring says: EOS as pad makes transformers skip the EOS as padding."""
    model = load_scalar_model(ModelConfig(tiny=TinyModelConfig(hidden_size=32, intermediate_size=64,
                                                               num_attention_heads=2, num_key_value_heads=1)),
                              tokenizer)
    eos = tokenizer.eos_token_id
    ids = torch.tensor([[70, 71, 72, eos]])
    with torch.no_grad():
        with_eos = float(model(input_ids=ids).logits[0, 0])
        model.config.pad_token_id = eos
        eos_as_pad = float(model(input_ids=ids).logits[0, 0])
        before_eos = float(model(input_ids=ids[:, :3]).logits[0, 0])
    assert eos_as_pad == pytest.approx(before_eos, abs=1e-5)
    assert abs(with_eos - before_eos) > 1e-4


def test_scores_are_read_at_the_last_real_token(tokenizer):
    model = load_scalar_model(ModelConfig(tiny=TinyModelConfig(hidden_size=32, intermediate_size=64,
                                                               num_attention_heads=2, num_key_value_heads=1)),
                              tokenizer)
    rows = [[70, 71, 72, 2], [80, 81, 2]]  # right-padded in a batch, each ends with EOS
    ids = torch.tensor([[70, 71, 72, 2], [80, 81, 2, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        scores = sequence_scores(model, ids, mask, mask.bool(), group_size=2)
        alone = [float(model(input_ids=torch.tensor([row])).logits[0, 0]) for row in rows]
    assert scores.sum.shape == (1, 2)
    torch.testing.assert_close(scores.sum[0], torch.tensor(alone), atol=1e-5, rtol=0)
    assert torch.equal(scores.mean, scores.sum)


# ----- a reward model trained on pairs labelled by tiny_sentiment ----------------------------------


def synthetic_review(rng: random.Random) -> str:
    """A review with 0-3 positive and 0-2 negative words, sometimes a repeat or no final period."""
    words = rng.sample(POSITIVE, rng.randint(0, 3)) + rng.sample(NEGATIVE, rng.randint(0, 2))
    if words and rng.random() < 0.2:
        words.append(rng.choice(words))
    rng.shuffle(words)
    text = " It was " + " and ".join(words) if words else " It was ok"
    return text + ("." if rng.random() < 0.8 else "")


def labelled_pairs(n: int, seed: int) -> list[dict]:
    """Pairs of synthetic reviews, the one tiny_sentiment scores higher as chosen (ties skipped)."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        a, b = synthetic_review(rng), synthetic_review(rng)
        sa, sb = sentiment_score(a), sentiment_score(b)
        if sa != sb:
            chosen, rejected = (a, b) if sa > sb else (b, a)
            rows.append({"prompt": f"Review {rng.choice(SUBJECTS)}:", "chosen": chosen, "rejected": rejected})
    return rows


@pytest.fixture(scope="module")
def trained_reward_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("reward")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in labelled_pairs(640, seed=1)))
    config = load_config(raw={
        "algorithm": "reward",
        "model": {"name": "tiny"},
        "data": {"train": str(data), "eval_fraction": 0.1, "max_length": 64, "max_prompt_length": 24},
        "train": {"batch_size": 16, "learning_rate": 2.0e-3, "warmup_steps": 5, "max_epochs": 3,
                  "progress_bar": False, "accelerator": "cpu", "devices": 1, "log_every_n_steps": 10},
        "output_dir": str(root / "run"),
    })
    result = train(config)
    return root / "run" / "model", result, data


def test_reward_model_ranks_heldout_pairs_well_above_chance(trained_reward_model):
    model_dir, result, _ = trained_reward_model
    assert result.metrics_after["val/accuracy"] > result.metrics_before["val/accuracy"]
    heldout = labelled_pairs(400, seed=99)
    source = load_reward_source(RewardConfig(model=str(model_dir)))
    chosen = source.score([r["prompt"] for r in heldout], [r["chosen"] for r in heldout])
    rejected = source.score([r["prompt"] for r in heldout], [r["rejected"] for r in heldout])
    accuracy = float((chosen > rejected).float().mean())
    # Chance is 0.5 and a 95% binomial interval around it with n = 400 ends at 0.55; this setting
    # reaches about 0.77.
    assert accuracy > 0.7, accuracy


def test_saved_reward_model_loads_with_transformers_and_is_centred(trained_reward_model, tokenizer):
    model_dir, _, data = trained_reward_model
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    assert model.config.num_labels == 1
    mean = getattr(model.config, SCORE_MEAN)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    # The stored mean is that of the training responses (90% of these rows): centred scores of all
    # rows average close to 0, and centring subtracts exactly the stored mean.
    source = load_reward_source(RewardConfig(model=str(model_dir)))
    raw = load_reward_source(RewardConfig(model=str(model_dir), args={"normalize": False}))
    prompts = [r["prompt"] for r in rows for _ in (0, 1)]
    responses = [text for r in rows for text in (r["chosen"], r["rejected"])]
    centred, uncentred = source.score(prompts, responses), raw.score(prompts, responses)
    torch.testing.assert_close(uncentred - centred, torch.full_like(centred, mean), atol=1e-5, rtol=0)
    assert abs(float(centred.mean())) < 0.15 * float(uncentred.std())


def test_ppo_against_the_learned_reward_model_runs_end_to_end(trained_reward_model, tmp_path, tiny_run):
    model_dir, _, _ = trained_reward_model
    raw = tiny_run("ppo", tmp_path / "ppo", steps=2, reward={"function": None, "model": str(model_dir)},
                   algorithm_args={"max_new_tokens": 8, "ppo_epochs": 2, "num_minibatches": 2})
    result = train(load_config(raw=raw))
    assert "val/reward" in result.metrics_after and math.isfinite(result.metrics_after["val/reward"])
    log = (tmp_path / "ppo" / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/reward", "train/kl_ref", "train/clip_frac", "train/explained_variance"} <= set(log)
    assert (tmp_path / "ppo" / "model" / "extra_modules.safetensors").is_file()  # the value head
