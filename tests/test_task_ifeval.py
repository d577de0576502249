"""The ``ifeval`` task: every instruction checker on edge cases, strict vs loose as IFEval defines
them, instructions read back from the prompt, and content-disjoint splits."""
from __future__ import annotations

import json
import random

import pytest

from zoo.bench.prompts import content_key
from zoo.bench.task import check_splits
from zoo.errors import ConfigError
from zoo_plugins.tasks.ifeval import (KINDS, IFEval, count_bullets, count_sentences, count_words, draw_instructions,
                                      ends_with, excludes_keywords, followed, ifeval_loose, ifeval_strict,
                                      includes_keywords, instructions, is_json, is_lowercase, question_text, variants)

LOWER = "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed."
NO_COMMA = "In your entire response, refrain from the use of any commas."
ENDING = "Finish your response with this exact phrase Any other questions?. No other words should follow this phrase."
BULLETS = ("Your answer must contain exactly 2 bullet points. Use the markdown bullet points such as:\n"
           "* This is point 1.\n* This is point 2")
JSON = "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```."


def test_lowercase():
    assert is_lowercase("all lower case, even café and straße.")
    assert not is_lowercase("Café")
    assert not is_lowercase("")  # no cased letter at all: not "in lowercase letters"
    assert not is_lowercase("123 !!")
    assert is_lowercase("ok  \n\n")


def test_word_and_sentence_counts():
    """Words are runs of \\w (unicode letters included); a sentence ends at . ! or ? before a space or the end."""
    assert count_words("") == 0
    assert count_words("naïve café, très bien!") == 4
    assert count_words("don't stop") == 3  # don, t, stop: IFEval's \w+ tokenizer
    assert count_sentences("") == 0
    assert count_sentences("One. Two! Three?") == 3
    assert count_sentences("Wait... what?! Pi is 3.14 and e is 2.72") == 3
    assert count_sentences("   trailing spaces.   ") == 1


def test_keywords_fixed_ending_and_commas():
    assert includes_keywords("The ANSWER is simple", ["answer", "simple"])
    assert not includes_keywords("The answer", ["answer", "simple"])
    assert includes_keywords("reasonable", ["reason"])  # IFEval's existence check is a substring search
    assert excludes_keywords("likely and unlike", ["like"])  # forbidden words are whole words
    assert not excludes_keywords("I LIKE it", ["like"])
    assert ends_with("Done. Any other questions?   \n", "Any other questions?")
    assert ends_with('"Done. Any other questions?"', "any other questions?")
    assert not ends_with("Any other questions? Thanks", "Any other questions?")
    assert not ends_with("", "Any other questions?")


def test_markdown_bullets_and_json():
    assert count_bullets("* one\n* two\n- three") == 3
    assert count_bullets("  * indented\n**bold** line\n*\n1. numbered") == 2  # IFEval's pattern: "*" then any character, the newline included
    assert count_bullets("") == 0
    assert is_json('{"a": [1, 2]}') and is_json('```json\n{"a": 1}\n```') and is_json("```\n[1]\n```  ")
    assert is_json("```JSON\n\"ünïcode\"\n```")
    assert not is_json("") and not is_json("Here: {\"a\": 1}") and not is_json("{'a': 1}")


def _prompt(*lines: str) -> str:
    return "What is a cat?\n\n" + "\n".join(lines)


def test_strict_and_loose_as_ifeval_defines_them():
    """Loose tries the response without its first line, its last line or both, each with and
    without every "*"; strict reads the response as it is. An empty response follows nothing."""
    prompt = _prompt(LOWER, JSON)
    response = 'Sure! Here is the JSON:\n{"cat": "a small animal"}'
    assert followed(prompt, response) == [False, False]
    assert followed(prompt, response, loose=True) == [True, True]  # both hold once the first line is dropped
    assert ifeval_strict([prompt], [response]) == [0.0] and ifeval_loose([prompt], [response]) == [1.0]
    assert variants("a\nb\nc") == ["a\nb\nc", "a\nb\nc", "b\nc", "a\nb", "b", "b\nc", "a\nb", "b"]
    # markdown emphasis: "**a**" is still all lower case; a comma inside emphasis is still a comma
    assert followed(_prompt(LOWER), "**a** cat.") == [True]
    assert followed(_prompt(NO_COMMA), "**a**, cat", loose=True) == [False]
    assert followed(_prompt(ENDING), "A cat is a cat. *Any other questions?*") == [False]
    assert followed(_prompt(ENDING), "A cat is a cat. *Any other questions?*", loose=True) == [True]
    # removing "*" also removes bullets: loose counts can differ from strict ones
    assert followed(_prompt(BULLETS), "* one\n* two") == [True]
    for check in (ifeval_strict, ifeval_loose):
        assert check([_prompt(LOWER, NO_COMMA)], [""]) == [0.0]
        assert check([_prompt(LOWER, NO_COMMA)], ["   \n "]) == [0.0]


def test_the_gold_reward_is_the_fraction_followed():
    prompt = _prompt(NO_COMMA, "Answer with less than 5 words.")
    assert ifeval_strict([prompt] * 4, ["A cat purrs.", "A cat, a purr.", "A cat is a small furry animal, yes",
                                        "A cat is an animal"]) == [1.0, 0.5, 0.0, 0.5]  # 5 words are not "less than 5"
    at_least = _prompt("Your response should contain at least 2 sentences.")
    assert ifeval_strict([at_least] * 2, ["One. Two", "One two"]) == [1.0, 0.0]


def test_instructions_are_read_back_from_rendered_prompts():
    prompt = ("<|im_start|>user\nIs it safe?\n\nDo not include keywords very, just in the response.\n"
              "Include keywords reason in the response.<|im_end|>\n<|im_start|>assistant\n")
    found = [(kind.name, match.group(1)) for kind, match in instructions(prompt)]
    assert found == [("forbidden_words", "very, just"), ("existence", "reason")]
    assert ifeval_strict([prompt], ["For this reason it is very safe."]) == [0.5]
    with pytest.raises(ConfigError, match="carries no instruction"):
        ifeval_strict(["What is a cat?"], ["a cat"])


def test_every_drawn_instruction_reads_back_as_its_kind():
    rng = random.Random(0)
    seen = set()
    for _ in range(400):
        drawn = draw_instructions(rng, rng.randint(1, 3))
        kinds = [kind.name for kind, _ in instructions("Q?\n\n" + "\n".join(drawn))]
        assert len(kinds) == len(drawn) == len(set(kinds))
        assert not ({"json_format", "no_comma"} <= set(kinds) or {"existence", "forbidden_words"} <= set(kinds))
        seen.update(kinds)
    assert seen == {kind.name for kind in KINDS}


def test_question_text_of_each_source():
    assert question_text("\n\nHuman: How do I bake?\n\nAssistant: Like this.\n\nHuman: And then?") == "How do I bake?"
    assert question_text("Question: Which is a gas?") == "Which is a gas?"
    assert question_text("  Why is the sky blue? ") == "Why is the sky blue?"


def _write(path, questions):
    path.write_text("".join(json.dumps({"question": q}) + "\n" for q in questions), encoding="utf-8")
    return path


def _task(**args) -> IFEval:
    return IFEval(IFEval.parse_args({"template": None, **args}))


def test_splits_are_disjoint_in_content_and_instructions_deterministic(tmp_path):
    questions = [f"What is fact number {i} about cats?" for i in range(50)]
    questions += [q.upper() + "  " for q in questions[:25]]  # the same questions again: one item each
    questions += ["x " * 100]  # too long: skipped
    data = _write(tmp_path / "q.jsonl", questions)
    task = _task(data=str(data), field="question", train_prompts=100, validation_prompts=5, test_prompts=10)
    built = task.build()
    check_splits("ifeval", built)
    assert (len(built.test_prompts), len(built.validation_prompts), len(built.train_prompts)) == (10, 5, 35)
    question_keys = [{content_key(p.split("\n\n")[0]) for p in split}
                     for split in (built.train_prompts, built.validation_prompts, built.test_prompts)]
    assert sum(map(len, question_keys)) == 50
    assert not (question_keys[0] & question_keys[1] or question_keys[0] & question_keys[2]
                or question_keys[1] & question_keys[2])
    assert all(1 <= len(instructions(p)) <= 2 for p in built.train_prompts + built.test_prompts)
    assert task.build().test_prompts == built.test_prompts
    redrawn = _task(data=str(data), field="question", train_prompts=100, validation_prompts=5, test_prompts=10,
                    constraint_seed=1).build()
    assert [p.split("\n\n")[0] for p in redrawn.test_prompts] == [p.split("\n\n")[0] for p in built.test_prompts]
    assert redrawn.test_prompts != built.test_prompts
    with pytest.raises(ConfigError, match=r"row 1: field 'chosen' is missing.*task.args.field"):
        _task(data=str(data)).build()
    with pytest.raises(ConfigError, match=r"task.args.data = .*50 distinct questions.*need at least 71"):
        _task(data=str(data), field="question", validation_prompts=20, test_prompts=50).build()
    with pytest.raises(ConfigError, match=r"task.args.max_constraints = 4"):
        _task(max_constraints=4)


def test_real_questions(shared_data):
    """TruthfulQA questions and ARC queries from the shared real data."""
    for path, field in (("truthfulqa/mc_task.json", "question"), ("arc/arc_easy.jsonl", "query")):
        built = _task(data=str(shared_data / path), field=field, train_prompts=100, validation_prompts=16,
                      test_prompts=32).build()
        check_splits("ifeval", built)
        assert len(built.train_prompts) == 100
        assert not any(p.startswith("Question:") for p in built.test_prompts)
        assert all(instructions(p) for p in built.train_prompts)
