"""`zoo pairs` writes what it sampled from: chat prompts as their messages (templated once when read back),
no row for a prompt it had to shorten, and responses cut at max_new_tokens reported or left out."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

import zoo.app.pairs
from zoo.app.pairs import _ended_with_eos, load_pairs_config, make_pairs
from zoo.config import DataConfig
from zoo.data.dataset import load_examples

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


def _prompts(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in rows))
    return path


def _config(tmp_path: Path, prompts: Path, **extra):
    raw = {"prompts": str(prompts), "models": [{"name": "tiny", "samples_per_prompt": 3}],
           "reward": {"function": "tiny_sentiment"}, "mode": "ranked", "sampling": {"max_new_tokens": 5},
           "batch_size": 4, "max_prompt_length": 150, "output": str(tmp_path / "ranked.jsonl"), **extra}
    return load_pairs_config(raw=raw)


def test_ended_with_eos_reads_each_rows_last_kept_token():
    """Rows: [5, EOS] ended; [5, 6, 7] was cut; [EOS] alone ended; an empty response did not end."""
    eos = 2
    sequences = torch.tensor([[9, 5, eos, 0], [9, 5, 6, 7], [9, eos, 0, 0], [9, 0, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    generation = SimpleNamespace(sequences=sequences, response_mask=mask, prompt_length=1)
    assert _ended_with_eos(generation, [eos]) == [True, False, True, False]


def test_chat_prompts_are_written_as_messages_and_long_prompts_get_no_row(tmp_path, tokenizer):
    long_prompt = "word " * 200
    result = make_pairs(_config(tmp_path, _prompts(tmp_path, [CHAT, "Say something nice.", long_prompt])))
    rows = [json.loads(line) for line in result.output.read_text().splitlines()]
    assert result.truncated_prompts == 1 and all(row["prompt"] != long_prompt for row in rows)
    chat_rows = [row for row in rows if isinstance(row["prompt"], list)]
    assert chat_rows and chat_rows[0]["prompt"] == CHAT
    # Read back as training data: the template is applied once, with no "set data.chat_template" advice.
    examples, _ = load_examples(str(result.output), "train", "ranked",
                                DataConfig(train=str(result.output), max_length=300, max_prompt_length=150), tokenizer)
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    chat_example = next(e for e in examples if e.prompt_messages is not None)
    assert chat_example.prompt == rendered and rendered.count("Be brief.") == 1


def test_responses_cut_at_max_new_tokens_are_counted_and_can_be_left_out(tmp_path, monkeypatch):
    cut_texts: set[str] = set()

    def every_other_was_cut(generation, eos_ids):
        flags = [i % 2 == 1 for i in range(len(generation.texts))]
        cut_texts.update(t for t, done in zip(generation.texts, flags) if not done)
        return flags

    monkeypatch.setattr(zoo.app.pairs, "_ended_with_eos", every_other_was_cut)
    prompts = _prompts(tmp_path, ["Say something nice.", "Tell me about rain.", "Describe a cat."])
    kept = make_pairs(_config(tmp_path, prompts))
    assert kept.unfinished == 5  # 9 samples, rows 0, 2, 4, 6, 8 cut
    dropped = make_pairs(_config(tmp_path, prompts, unfinished="drop"))
    assert dropped.unfinished == 5
    written = {r for line in dropped.output.read_text().splitlines() for r in json.loads(line)["responses"]}
    assert written and not (written & cut_texts)
