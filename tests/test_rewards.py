"""Reward sources: the tiny_sentiment function, function and model sources, and their config errors."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.config import ModelConfig, RewardConfig, TinyModelConfig
from zoo.errors import ConfigError, ZooError
from zoo.models import load_scalar_model
from zoo.registry import get_registry
from zoo.rewards.loading import load_reward_source
from zoo.rewards.model import SCORE_MEAN
from zoo.rewards.sources import FunctionReward, RewardFunction
from tiny_policy import one_torch_thread  # noqa: F401  (autouse)

SMALL = TinyModelConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)


# ----- tiny_sentiment ---------------------------------------------------------------------------


@pytest.mark.parametrize("response,expected", [
    (" It was great and lovely.", 2.0),            # two positive words
    (" It was awful and bad.", -2.0),              # two negative words
    (" It was great and great.", 0.5),             # +2, one repeat: −1.5
    (" It was great and lovely", 1.0),             # +2, no final period: −1
    ("Great, NICE, but noisy.", 1.0),              # case-insensitive: +2 −1
    (" It was great and lovely and superb and excellent and wonderful and fine.", 5.0),  # +6, 13 words: −1
    (".", -3.0),                                   # no words: 3 short of min_words
    ("", -4.0),                                    # no words and no period
    (" It was greatly nice.", 1.0),                # "greatly" is not "great"
])
def test_tiny_sentiment_hand_worked(response, expected):
    """R = #positive − #negative − 1.5·#repeats − 1·[no final '.'] − 1·(words over 12 or under 3);
    "it", "was", "and" may repeat freely."""
    source = load_reward_source(RewardConfig(function="tiny_sentiment"))
    assert source.score(["Review the soup:"], [response]).tolist() == [expected]


def test_reward_args_reach_the_function():
    source = load_reward_source(RewardConfig(function="tiny_sentiment",
                                             args={"period_penalty": 0.0, "repeat_penalty": 1.0}))
    scores = source.score(["p", "p"], [" It was great and lovely", " It was great and great."])
    assert scores.tolist() == [2.0, 1.0]


def test_function_source_returns_float32_vector():
    source = load_reward_source(RewardConfig(function="tiny_sentiment"))
    scores = source.score(["a", "b", "c"], [" It was fine.", " It was sad.", " It was fine and fine."])
    assert scores.dtype == torch.float32 and scores.shape == (3,)
    assert source.name == "tiny_sentiment"
    assert source.score([], []).shape == (0,)


def test_tiny_sentiment_is_registered_by_hook():
    registry = get_registry()
    entry = registry.entries("rewards")["tiny_sentiment"]
    assert isinstance(entry.obj, RewardFunction) and entry.plugin == "tiny_reviews"
    assert zoo.RewardFunction is RewardFunction


# ----- configuration errors ---------------------------------------------------------------------


def test_unknown_function_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown reward 'tiny_sentimnt'.*did you mean 'tiny_sentiment'"):
        load_reward_source(RewardConfig(function="tiny_sentimnt"))


def test_unknown_function_argument_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"'reward.args.period_penalti'.*did you mean 'period_penalty'"):
        load_reward_source(RewardConfig(function="tiny_sentiment", args={"period_penalti": 0}))


def test_neither_or_both_sources():
    with pytest.raises(ConfigError, match="neither"):
        load_reward_source(RewardConfig())
    with pytest.raises(ConfigError, match="both set"):
        load_reward_source(RewardConfig(function="tiny_sentiment", model="runs/x/model"))


def test_missing_reward_model_directory_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"reward.model = '.*nowhere'.*no config.json"):
        load_reward_source(RewardConfig(model=str(tmp_path / "nowhere")))


def test_bad_function_output_is_reported():
    short = FunctionReward(RewardFunction("short", lambda prompts, responses: [1.0]))
    with pytest.raises(ZooError, match="returned 1 values for 2 responses"):
        short.score(["a", "b"], ["x", "y"])
    nan = FunctionReward(RewardFunction("nan", lambda prompts, responses: [float("nan")] * len(responses)))
    with pytest.raises(ZooError, match="returned nan for response 0"):
        nan.score(["a"], ["x"])


# ----- learned reward models --------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_reward_model(tmp_path_factory, tokenizer):
    model = load_scalar_model(ModelConfig(name="tiny", tiny=SMALL), tokenizer)
    setattr(model.config, SCORE_MEAN, 0.25)
    path = tmp_path_factory.mktemp("rm") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model


def _reference_score(model, tokenizer, prompt: str, response: str) -> float:
    """The head applied to the last hidden state of ``prompt + response + EOS``, computed by hand."""
    ids = tokenizer(prompt + response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
        return float(model.score(hidden)[0])


def test_model_source_scores_last_token_and_normalises(saved_reward_model, tokenizer):
    path, model = saved_reward_model
    prompts = ["Review the soup:", "Review the film:", "Hi"]
    responses = [" It was great.", " It was awful and very bad indeed.", " ok"]
    expected = torch.tensor([_reference_score(model, tokenizer, p, r) for p, r in zip(prompts, responses)])
    raw = load_reward_source(RewardConfig(model=str(path), args={"normalize": False}))
    torch.testing.assert_close(raw.score(prompts, responses), expected, atol=1e-5, rtol=0)
    centred = load_reward_source(RewardConfig(model=str(path)))  # normalize: true by default
    torch.testing.assert_close(centred.score(prompts, responses), expected - 0.25, atol=1e-5, rtol=0)
    # padding in larger batches does not change a score
    one_by_one = load_reward_source(RewardConfig(model=str(path), args={"batch_size": 1, "normalize": False}))
    torch.testing.assert_close(one_by_one.score(prompts, responses), expected, atol=1e-5, rtol=0)
    assert raw.name == path.parent.name


def test_model_source_argument_errors(saved_reward_model):
    path, _ = saved_reward_model
    with pytest.raises(ConfigError, match=r"'reward.args.normalise'.*did you mean 'normalize'"):
        load_reward_source(RewardConfig(model=str(path), args={"normalise": True}))
    with pytest.raises(ConfigError, match=r"reward.args.normalize = 'yes': expected true or false"):
        load_reward_source(RewardConfig(model=str(path), args={"normalize": "yes"}))
    with pytest.raises(ConfigError, match=r"reward.args.batch_size = 0"):
        load_reward_source(RewardConfig(model=str(path), args={"batch_size": 0}))
