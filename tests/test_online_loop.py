"""The online loop and PPO's defaults: dropout off, a missing-EOS penalty, one value per logged name
and step, and an LR schedule that waits when no optimiser step ran."""
from __future__ import annotations

import collections
import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from zoo.algorithm import ExperienceContext
from zoo.batch import Batch
from zoo.config import RewardConfig, TrainConfig, load_config
from zoo.models import frozen
from zoo.module import AlignmentModule
from zoo.rewards.loading import load_reward_source
from zoo.rollout.batches import encode_prompts
from zoo.rollout.sampler import ends_with_stop, first_eos_mask
from zoo.tiny import tiny_model
from zoo.training_guard import train
from zoo_plugins.algorithms.ppo import PPO, PPOArgs


def _two_train_mode_passes(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    model.train()
    ids = torch.arange(4, 20)[None]
    torch.manual_seed(0)
    first = model(input_ids=ids).logits
    second = model(input_ids=ids).logits
    return first, second


@pytest.mark.parametrize("disable", [True, False])
def test_the_loop_turns_the_policys_dropout_off_for_ppo_unless_told_to_keep_it(tokenizer, disable):
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                      resid_pdrop=0.5, embd_pdrop=0.5, attn_pdrop=0.5))
    llama = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    for layer in llama.model.layers:  # Llama's attention dropout is a float on the module, not an nn.Dropout
        layer.self_attn.attention_dropout = 0.5
    for model in (gpt2, llama):
        first, second = _two_train_mode_passes(model)
        assert not torch.equal(first, second)  # dropout is active to begin with
        AlignmentModule(model, PPO(PPOArgs(disable_dropout=disable)), TrainConfig(), tokenizer=tokenizer)
        first, second = _two_train_mode_passes(model)
        assert torch.equal(first, second) is disable


def test_a_response_finished_when_it_holds_a_stop_token_before_padding():
    """Rows: EOS then pad; cut at the limit; empty; EOS at once. The sampler cuts each row after its
    first stop token (first_eos_mask) and pads with -1 here, so a stop token is only ever real."""
    eos, pad = 2, 0
    response = torch.tensor([[5, 6, eos, 9], [5, 6, 7, 8], [pad, pad, pad, pad], [eos, 5, 6, 7]])
    kept = response.masked_fill(~first_eos_mask(response, [eos]), -1)
    assert ends_with_stop(kept, [eos]).tolist() == [True, False, False, True]
    assert ends_with_stop(response, [7, 8]).tolist() == [False, True, False, True]


def test_missing_eos_penalty_lowers_the_reward_of_truncated_responses_only(tokenizer):
    policy = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    with torch.no_grad():  # make EOS likely enough that some responses finish within 4 tokens
        policy.lm_head.weight[tokenizer.eos_token_id] += 0.6 * policy.model.norm.weight.sign()
    reward = load_reward_source(RewardConfig(function="tiny_sentiment"))
    prompts = ["Review the soup:", "Review the film:", "Review the park:", "Review the book:"]
    ids, mask = encode_prompts(tokenizer, prompts)
    batch = Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool), group_size=1,
                  valid=torch.ones(4, 1, dtype=torch.bool), prompt_ids=ids, prompt_attention_mask=mask, prompts=prompts)
    scores = {}
    for penalty in (None, 3.0):
        algorithm = PPO(PPOArgs(max_new_tokens=4, samples_per_prompt=4, missing_eos_penalty=penalty))
        ctx = ExperienceContext.for_run(policy, tokenizer, reference=frozen(copy.deepcopy(policy)), reward=reward,
                                        modules=torch.nn.ModuleDict(algorithm.build_modules(policy)), step=0, epoch=0,
                                        training=False)
        torch.manual_seed(0)
        with torch.no_grad():
            experience = algorithm.make_experience(ctx, batch)
        scores[penalty] = experience.extras["scores"]
        tokens = experience.input_ids[experience.loss_mask.bool()].split(experience.loss_mask.sum(-1).tolist())
        finished = torch.tensor([bool(len(t)) and int(t[-1]) == tokenizer.eos_token_id for t in tokens])
    assert 0 < int(finished.sum()) < len(finished), "the sample needs finished and truncated responses"
    expected = scores[None] - 3.0 * (~finished).float()
    torch.testing.assert_close(scores[3.0], expected)


def _end_of_turn_tokenizer():
    """The tiny tokenizer with a chat template that ends turns with ``<|end|>``, not its EOS ``</s>``."""
    from zoo.data.tokenize import response_end_id
    from zoo.tiny import tiny_tokenizer

    chat = tiny_tokenizer()
    chat.add_special_tokens({"additional_special_tokens": ["<|end|>"]})
    chat.chat_template = ("{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    end = chat.convert_tokens_to_ids("<|end|>")
    assert response_end_id(chat) == end != chat.eos_token_id
    return chat, end


def test_missing_eos_penalty_reads_the_samplers_stop_set_not_the_tokenizers_eos():
    """A chat model ends its answers with the end-of-turn token: such a response is finished and keeps
    its reward; only responses cut at max_new_tokens lose the penalty P = 3."""
    chat, end = _end_of_turn_tokenizer()
    policy = tiny_model(chat, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    with torch.no_grad():  # make the end of turn likely enough that some responses finish within 4 tokens
        policy.lm_head.weight[end] += 0.6 * policy.model.norm.weight.sign()
    prompts = ["Review the soup:", "Review the film:", "Review the park:", "Review the book:"]
    ids, mask = encode_prompts(chat, prompts)
    batch = Batch(input_ids=ids, attention_mask=mask, loss_mask=torch.zeros_like(ids, dtype=torch.bool), group_size=1,
                  valid=torch.ones(4, 1, dtype=torch.bool), prompt_ids=ids, prompt_attention_mask=mask, prompts=prompts)
    reward = load_reward_source(RewardConfig(function="tiny_sentiment"))
    scores = {}
    for penalty in (None, 3.0):
        algorithm = PPO(PPOArgs(max_new_tokens=4, samples_per_prompt=4, missing_eos_penalty=penalty))
        ctx = ExperienceContext.for_run(policy, chat, reference=frozen(copy.deepcopy(policy)), reward=reward,
                                        modules=torch.nn.ModuleDict(algorithm.build_modules(policy)), training=False)
        torch.manual_seed(0)
        with torch.no_grad():
            experience = algorithm.make_experience(ctx, batch)
        scores[penalty] = experience.extras["scores"]
        tokens = experience.input_ids[experience.loss_mask.bool()].split(experience.loss_mask.sum(-1).tolist())
        ended_with_end_of_turn = torch.tensor([bool(len(t)) and int(t[-1]) == end for t in tokens])
    assert 0 < int(ended_with_end_of_turn.sum()) < len(tokens), "the sample needs finished and truncated responses"
    torch.testing.assert_close(scores[3.0], scores[None] - 3.0 * (~ended_with_end_of_turn).float())


def _logged_names_per_step(monkeypatch) -> collections.Counter:
    seen: collections.Counter = collections.Counter()
    original = AlignmentModule.log

    def recording(self, name, *args, **kwargs):
        if name.startswith("train/"):
            seen[(name, self.global_step, self.trainer.fit_loop.epoch_loop.batch_progress.total.ready)] += 1
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(AlignmentModule, "log", recording)
    return seen


@pytest.mark.parametrize("algorithm", ["ppo", "rejection_sampling"])
def test_each_online_metric_is_logged_once_per_step(tmp_path, tiny_run, monkeypatch, algorithm):
    seen = _logged_names_per_step(monkeypatch)
    train(load_config(raw=tiny_run(algorithm, tmp_path / "run", steps=2, data={"eval_fraction": 0.0})))
    names = {name for name, _, _ in seen}
    assert {"train/reward", "train/kl_ref"} <= names if algorithm == "ppo" else "train/reward_best" in names
    assert [key for key, count in seen.items() if count > 1] == []


def test_the_lr_schedule_waits_when_min_score_rejects_every_prompt(tmp_path, tiny_run, monkeypatch):
    # One epoch, not max_steps: with every prompt rejected no optimiser step (and so no global step) happens,
    # and the epoch's end stops the run; the schedule is read there, before the error.
    from zoo.errors import ZooError

    seen = {}
    original = AlignmentModule.on_train_epoch_end

    def record(self):
        scheduler = self.trainer.lr_scheduler_configs[0].scheduler
        seen.update(last_epoch=scheduler.last_epoch, lr=scheduler.get_last_lr())
        original(self)

    monkeypatch.setattr(AlignmentModule, "on_train_epoch_end", record)
    raw = tiny_run("rejection_sampling", tmp_path / "run", steps=-1, data={"eval_fraction": 0.0},
                   algorithm_args={"max_new_tokens": 4, "min_score": 1.0e9},
                   train={"scheduler": "linear", "max_epochs": 1})
    with pytest.raises(ZooError, match="ran no optimiser step"):
        train(load_config(raw=raw))
    assert seen["last_epoch"] == 0  # no optimiser step ran, so the schedule did not move
    assert seen["lr"] == [pytest.approx(1e-3)]


def test_an_online_epoch_without_an_optimiser_step_stops_the_run(tmp_path):
    """min_score rejecting every sample used to loop for ever under train.max_steps (no step, no progress)."""
    import subprocess
    import sys

    out = tmp_path / "run"
    command = [sys.executable, "-m", "zoo.cli", "train", "configs/tiny/rejection_sampling.yaml", "model.name=tiny",
               "algorithm_args.min_score=1.0e9", "algorithm_args.max_new_tokens=4", "data.builtin_size=16",
               "train.batch_size=8", "train.max_steps=3", "train.progress_bar=false", f"output_dir={out}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert done.returncode != 0
    assert "ran no optimiser step" in done.stderr + done.stdout and "min_score" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
