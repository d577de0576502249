"""One prompt truncation policy for training, sampling and reward-model scoring.

A long chat prompt (a system message and seven turns, SmolLM2's ChatML template) is cut by
training in whole turns, keeping the system header and the last user turn's ``<|im_start|>user``.
A sampler and a reward model given the same row's prompt see the same ids: the reward model in the
preference suite, in ``zoo pairs`` and in an online run, the sampler of online algorithms and of
``encode_prompts``. Short prompts are not cut anywhere, so their ids are what they were.

The tokenizer is the byte-level tiny one with SmolLM2's special tokens and chat template (one token
per byte: budgets of a few hundred tokens hold a few turns), so no download is needed.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from zoo.config import DataConfig, RewardConfig, load_config
from zoo.data.collate import Collator
from zoo.data.dataset import load_examples
from zoo.data.examples import Example
from zoo.data.tokenize import ExampleTokenizer
from zoo.errors import ConfigError
from zoo.rewards.loading import load_reward_source
from zoo.rollout import encode_prompts
from zoo.tiny import tiny_tokenizer

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

SYSTEM = {"role": "system", "content": "You answer in one line."}
#: System, then user / assistant turns ending with the user's: about 600 tokens rendered.
LONG_CHAT = [SYSTEM] + [{"role": ("user", "assistant")[i % 2],
                         "content": f"turn {i}: " + " ".join(f"w{i}x{j}" for j in range(12))} for i in range(7)]
SHORT_CHAT = [SYSTEM, {"role": "user", "content": "Name a colour."}]
MAX_PROMPT = 200


def chatml_tokenizer():
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = SMOLLM2_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def chatml():
    return chatml_tokenizer()


@pytest.fixture(scope="module")
def models(tmp_path_factory, chatml) -> tuple[Path, Path]:
    """(policy, reward model) folders: tiny Llama models with the ChatML tokenizer saved beside them."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from zoo.tiny import tiny_model

    root = tmp_path_factory.mktemp("chatml-models")
    policy = tiny_model(chatml, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=1, max_position_embeddings=1024)
    policy.save_pretrained(root / "policy")
    chatml.save_pretrained(root / "policy")
    torch.manual_seed(0)
    reward = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(chatml), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=1024, num_labels=1, pad_token_id=chatml.pad_token_id))
    reward.save_pretrained(root / "reward")
    chatml.save_pretrained(root / "reward")
    return root / "policy", root / "reward"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _rows(ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    return [row[m.bool()].tolist() for row, m in zip(ids, mask)]


def seen_by(reward) -> list[list[int]]:
    """Every row of token ids the reward model's forward pass receives (recorded from now on)."""
    seen: list[list[int]] = []

    def record(module, args, kwargs):
        seen.extend(_rows(kwargs["input_ids"].cpu(), kwargs["attention_mask"].cpu()))

    reward.model.register_forward_pre_hook(record, with_kwargs=True)
    return seen


def assert_template_kept(tokenizer, ids: list[int]) -> None:
    """The system header first, then whole turns, the last user turn's header and the generation prompt."""
    text = tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou answer in one line.<|im_end|>\n<|im_start|>user\nturn "), text
    last = LONG_CHAT[-1]["content"]
    assert f"<|im_start|>user\n{last}<|im_end|>\n<|im_start|>assistant\n" in text


def training_pairs(tokenizer, tmp_path: Path, max_length: int):
    """The long and the short chat prompt as pairwise training rows: (examples, collated batch)."""
    path = _jsonl(tmp_path / "pairs.jsonl", [{"prompt": LONG_CHAT, "chosen": "Blue, I think.", "rejected": "No."},
                                             {"prompt": SHORT_CHAT, "chosen": "Red.", "rejected": "Green?"}])
    config = DataConfig(train=str(path), max_length=max_length, max_prompt_length=MAX_PROMPT)
    examples, report = load_examples(str(path), "train", "pairwise", config, tokenizer)
    assert report.turns_cut == 1 and report.truncated == 1  # the long prompt lost whole turns, the short none
    return path, examples, Collator(tokenizer.pad_token_id)(examples)


# ----- the reward model sees the training rows ----------------------------------------------------


def test_the_preference_suite_reward_model_sees_the_rows_training_builds(chatml, models, tmp_path):
    """reward.args.max_length 400: the reward model's default prompt budget (half, 200) is the data's;
    the long chat prompt keeps its system header and last user turn, token for token as in training."""
    from zoo.eval import evaluate

    path, _, batch = training_pairs(chatml, tmp_path, max_length=400)
    reward = load_reward_source(RewardConfig(model=str(models[1]), args={"max_length": 400}))
    seen = seen_by(reward)
    evaluate(None, reward.tokenizer, ["preference"], reward=reward,
             options={"preference": {"data": str(path), "scorer": "reward"}})
    training = _rows(batch.input_ids, batch.attention_mask)  # chosen, rejected of each row
    # The suite scores the chosen responses of a batch, then the rejected ones.
    assert sorted(seen) == sorted(training)
    long_chosen = training[0]
    assert_template_kept(chatml, long_chosen[: len(_rows(batch.prompt_ids, batch.prompt_attention_mask)[0])])


def test_a_reward_model_scores_a_run_s_prompts_as_the_run_cut_them(chatml, models, tmp_path):
    """An online run with reward.model: the reward model takes data.max_prompt_length and
    prompt_truncation (not half of its own max_length, 256 here), so the prompt it scores is the one
    the policy was given (batch.prompt_ids), the chat template kept."""
    from zoo.run import build_run

    prompts = _jsonl(tmp_path / "prompts.jsonl", [{"prompt": LONG_CHAT}, {"prompt": SHORT_CHAT}])
    config = load_config(raw={
        "algorithm": "rloo", "algorithm_args": {"max_new_tokens": 4, "samples_per_prompt": 2},
        "model": {"name": str(models[0])},
        "data": {"train": str(prompts), "eval_fraction": 0.0, "max_length": 260, "max_prompt_length": MAX_PROMPT},
        "reward": {"model": str(models[1])},
        "train": {"batch_size": 2, "max_steps": 1, "progress_bar": False, "accelerator": "cpu", "devices": 1},
        "output_dir": str(tmp_path / "run"),
    })
    run = build_run(config)
    try:
        batch = next(iter(run.datamodule.train_dataloader()))
        reward = run.module.reward
        seen = seen_by(reward)
        reward.score(batch.prompts, ["Sure."] * len(batch.prompts))
        sampled = _rows(batch.prompt_ids, batch.prompt_attention_mask)  # what the policy samples from
        assert [row[: len(prompt)] for row, prompt in zip(seen, sampled)] == sampled
        long = next(prompt for prompt in sampled if len(prompt) > 100)
        assert_template_kept(chatml, long)
        assert (reward.prompts.max_prompt_length, reward.prompts.truncation) == (MAX_PROMPT, "keep_end")
    finally:
        run.lock.release()


def test_zoo_pairs_scores_the_prompt_it_sampled_from(chatml, models, tmp_path, monkeypatch):
    """zoo pairs with a reward model: the long chat prompt is sampled and scored cut to
    max_prompt_length in whole turns (and gets no row, since its samples answer a shortened prompt)."""
    import zoo.rewards.loading
    from zoo.app.pairs import load_pairs_config, make_pairs

    prompts = _jsonl(tmp_path / "prompts.jsonl", [{"prompt": LONG_CHAT}, {"prompt": SHORT_CHAT}])
    config = load_pairs_config(raw={
        "prompts": str(prompts), "models": [{"name": str(models[0]), "samples_per_prompt": 2}],
        "reward": {"model": str(models[1])}, "mode": "ranked", "sampling": {"max_new_tokens": 4},
        "max_prompt_length": MAX_PROMPT, "output": str(tmp_path / "ranked.jsonl")})
    loaded = []
    load = zoo.rewards.loading.load_reward_source

    def recorded(*args, **kwargs):
        reward = load(*args, **kwargs)
        loaded.append(seen_by(reward))
        return reward

    monkeypatch.setattr(zoo.rewards.loading, "load_reward_source", recorded)
    result = make_pairs(config)
    assert result.truncated_prompts == 1
    (seen,) = loaded
    # The prompt ids sampling used: the prompt data read as zoo pairs reads it.
    examples, _ = load_examples(str(prompts), "train", "prompt",
                                DataConfig(max_prompt_length=MAX_PROMPT, max_length=MAX_PROMPT + 4), chatml)
    sampled = examples[0].prompt_ids
    assert len(seen) == 4 and seen[0][: len(sampled)] == sampled and seen[1][: len(sampled)] == sampled
    assert_template_kept(chatml, sampled)


def test_a_chat_prompt_the_reward_model_renders_otherwise_is_cut_as_plain_text(chatml, models):
    """Messages are used only when they render to the prompt's text with the reward model's template:
    a prompt rendered by another template is cut token by token, as any plain string."""
    from zoo.data.examples import ChatPrompt

    reward = load_reward_source(RewardConfig(model=str(models[1]), args={"max_length": 300, "max_prompt_length": 100}))
    other = tiny_tokenizer().apply_chat_template(LONG_CHAT, tokenize=False, add_generation_prompt=True)
    seen = seen_by(reward)
    reward.score([ChatPrompt(other, LONG_CHAT), other], ["ok", "ok"])
    assert seen[0] == seen[1] and seen[0][:100] == chatml(other, add_special_tokens=False)["input_ids"][-100:]


# ----- sampling ---------------------------------------------------------------------------------------


def test_encode_prompts_gives_the_prompt_ids_training_built(chatml, tmp_path):
    """A sampler given a batch's prompt texts (the generation suite, best-of-n, a plugin re-encoding
    batch.prompts) encodes them to the training prompt ids, the long chat prompt cut in whole turns."""
    _, examples, batch = training_pairs(chatml, tmp_path, max_length=260)
    ids, mask = encode_prompts(chatml, batch.prompts, MAX_PROMPT)
    assert _rows(ids, mask) == [e.prompt_ids for e in examples] == _rows(batch.prompt_ids,
                                                                         batch.prompt_attention_mask)
    assert_template_kept(chatml, examples[0].prompt_ids)
    # keep_start: the same cut from the other end, as training's keep_start makes it.
    start = ExampleTokenizer(chatml, 260, MAX_PROMPT, "keep_start")(Example(examples[0].prompt, ["x"], None, 1, "mem",
                                                                            prompt_messages=LONG_CHAT))
    ids, mask = encode_prompts(chatml, [examples[0].prompt], MAX_PROMPT, "keep_start")
    assert _rows(ids, mask) == [start.prompt_ids] and start.prompt_cut == "turns"


def test_short_prompts_encode_as_before(chatml):
    """No truncation, no change: [BOS] + the text's tokens, whether or not the prompt carries messages."""
    from zoo.data.examples import ChatPrompt

    rendered = chatml.apply_chat_template(SHORT_CHAT, tokenize=False, add_generation_prompt=True)
    plain = chatml(rendered, add_special_tokens=False)["input_ids"]
    for prompt in (rendered, ChatPrompt(rendered, SHORT_CHAT)):
        ids, mask = encode_prompts(chatml, [prompt], MAX_PROMPT)
        assert _rows(ids, mask) == [plain]


# ----- the policy and the prompt that carries its messages -------------------------------------------


def test_a_chat_prompt_is_its_text_and_keeps_its_messages_through_pickling():
    from zoo.data.examples import ChatPrompt

    prompt = ChatPrompt("<|im_start|>user\nhi<|im_end|>\n", SHORT_CHAT)
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n" and json.dumps(prompt) == json.dumps(str(prompt))
    copy = pickle.loads(pickle.dumps(prompt))
    assert isinstance(copy, ChatPrompt) and copy.messages == SHORT_CHAT
    # An example holds its prompt as a ChatPrompt exactly when it knows the messages.
    assert isinstance(Example("t", [], None, 1, "mem", prompt_messages=SHORT_CHAT).prompt, ChatPrompt)
    assert type(Example(prompt, [], None, 1, "mem").prompt) is str


def test_reward_model_prompt_settings_are_checked(chatml, models):
    from zoo.data.truncation import PromptPolicy

    assert PromptPolicy(8, "drop").never_dropping().truncation == "keep_end"
    with pytest.raises(ValueError, match="prompt truncation 'middle'"):
        PromptPolicy(8, "middle")
    with pytest.raises(ConfigError, match=r"reward.args.prompt_truncation = 'drop': expected keep_end or keep_start"):
        load_reward_source(RewardConfig(model=str(models[1]), args={"prompt_truncation": "drop"}))
    with pytest.raises(ConfigError, match=r"data.max_prompt_length = 600 leaves the reward model no room for a "
                                          r"response within reward.args.max_length = 512"):
        load_reward_source(RewardConfig(model=str(models[1])), prompts=PromptPolicy(600))
    # reward.args.max_prompt_length overrides the caller's budget, and keeps its truncation.
    reward = load_reward_source(RewardConfig(model=str(models[1]), args={"max_prompt_length": 64}),
                                prompts=PromptPolicy(200, "keep_start"))
    assert reward.prompts == PromptPolicy(64, "keep_start", "reward.args.max_prompt_length")
    # A run that drops long rows has none left: its reward model cuts (never) as keep_end.
    assert load_reward_source(RewardConfig(model=str(models[1])), prompts=PromptPolicy(200, "drop")
                              ).prompts.truncation == "keep_end"
