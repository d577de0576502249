"""MMLU: the prompt format, log-likelihood scoring against a direct forward pass, aggregation,
and malformed release files."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.errors import ConfigError, DataError
from zoo.eval.loglik import LoglikScorer, make_request
from zoo.eval.mmlu import (build_prompt, format_question, load_split, mmlu_metrics, read_split_file,
                           score_multiple_choice)
from zoo.eval.results import grouped_metrics
from zoo.tiny import tiny_model


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1,
                      max_position_embeddings=1024).eval()


def item(subject: str, question: str, answer: int, tag: str = "") -> dict:
    return {"subject": subject, "question": question,
            "choices": [f"red{tag}", f"green {tag}", f"blue{tag}!", f"the colour of {tag}"], "answer": answer}


DEV = [item("astronomy", "What colour is the sky on a clear day?", 2, "sky"),
       item("astronomy", "What colour is grass?", 1, "grass"),
       item("virology", "What colour is blood?", 0, "blood")]
TEST = [item("astronomy", "What colour is Mars?", 0, "mars"),
        item("astronomy", "  Which planet is blue?  ", 3, "neptune"),
        item("astronomy", "What colour are leaves in spring?", 1, "leaf"),
        item("virology", "What colour is a rose?", 0, "rose")]


def test_prompt_of_a_known_question_with_two_shots(shared_data):
    test, source = load_split(["anatomy"], "test", shared_data, limit=1)
    dev, _ = load_split(["anatomy"], "dev", shared_data)
    assert source.endswith("mmlu")
    expected = (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        "What is the embryological origin of the hyoid bone?\n"
        "A. The first pharyngeal arch\n"
        "B. The first and second pharyngeal arches\n"
        "C. The second pharyngeal arch\n"
        "D. The second and third pharyngeal arches\n"
        "Answer: D\n\n"
        "Which of these branches of the trigeminal nerve contain somatic motor processes?\n"
        "A. The supraorbital nerve\n"
        "B. The infraorbital nerve\n"
        "C. The mental nerve\n"
        "D. None of the above\n"
        "Answer: D\n\n"
        "A lesion causing compression of the facial nerve at the stylomastoid foramen will cause ipsilateral\n"
        "A. paralysis of the facial muscles.\n"
        "B. paralysis of the facial muscles and loss of taste.\n"
        "C. paralysis of the facial muscles, loss of taste and lacrimation.\n"
        "D. paralysis of the facial muscles, loss of taste, lacrimation and decreased salivation.\n"
        "Answer:"
    )
    assert build_prompt(test["anatomy"][0], dev["anatomy"][:2]) == expected
    assert len(dev["anatomy"]) == 5


def test_question_format_strips_the_question_only():
    probe = {"subject": "high_school_us_history", "question": "  Who?\n", "choices": [" a", "b ", "c", "d"],
             "answer": 1}
    assert format_question(probe) == "Who?\nA.  a\nB. b \nC. c\nD. d\nAnswer:"
    assert format_question(probe, include_answer=True).endswith("Answer: B")
    assert build_prompt(probe, []).startswith(
        "The following are multiple choice questions (with answers) about high school us history.\n\nWho?")


def direct_loglikelihood(model, tokenizer, context: str, continuation: str, max_length: int = 10**9) -> float:
    """Independent computation: one full forward of context + continuation, log-softmax at the
    positions that predict the continuation's tokens (the tiny tokenizer has no BOS and is
    byte-level, so the continuation's tokens are the bytes after the context)."""
    context_ids = tokenizer(context)["input_ids"]
    whole = tokenizer(context + continuation)["input_ids"]
    n = len(whole) - len(context_ids)
    window = whole[-(max_length + 1):]
    with torch.no_grad():
        logits = model(torch.tensor([window[:-1]])).logits[0].float()
    logp = logits.log_softmax(-1)
    positions = range(len(window) - 1 - n, len(window) - 1)
    return sum(float(logp[p, window[p + 1]]) for p in positions)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_choice_loglikelihoods_match_a_direct_forward(model, tokenizer, share_prefix):
    records = score_multiple_choice(model, tokenizer, TEST, DEV, num_fewshot=1, batch_size=3, share_prefix=share_prefix)
    assert [r["id"] for r in records] == ["astronomy/0", "astronomy/1", "astronomy/2", "virology/3"]
    for test_item, record in zip(TEST, records):
        shots = [d for d in DEV if d["subject"] == test_item["subject"]][:1]
        context = build_prompt(test_item, shots)
        expected = [direct_loglikelihood(model, tokenizer, context, " " + letter) for letter in "ABCD"]
        assert record["loglikelihoods"] == pytest.approx(expected, abs=1e-4)
        assert record["prediction"] == max(range(4), key=expected.__getitem__)
        assert record["gold"] == test_item["answer"]
        assert record["correct"] == (record["prediction"] == test_item["answer"])


def test_contexts_longer_than_the_window_lose_their_beginning(model, tokenizer):
    pairs = [("x" * 30 + " tail of a long context", " yes"), ("short", " a continuation")]
    scorer = LoglikScorer(model, tokenizer, max_length=20, batch_size=2)
    scores = scorer([make_request(tokenizer, c, k) for c, k in pairs])
    for (context, continuation), (score, _) in zip(pairs, scores):
        assert score == pytest.approx(direct_loglikelihood(model, tokenizer, context, continuation, 20), abs=1e-4)
    with pytest.raises(ValueError, match="does not fit the model's 20-token window"):
        scorer([make_request(tokenizer, "c", " a continuation longer than the window")])


class CountingModel(torch.nn.Module):
    """Wraps a model and records the shape of every forward pass."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config, self.calls = inner, inner.config, []

    def forward(self, input_ids, cache=None, use_cache=None, logits_to_keep=0):
        self.calls.append(tuple(input_ids.shape))
        return self.inner(input_ids=input_ids, cache=cache, use_cache=use_cache, logits_to_keep=logits_to_keep)


def test_one_forward_pass_scores_all_four_letters(model, tokenizer):
    counting = CountingModel(model)
    score_multiple_choice(counting, tokenizer, TEST, DEV, num_fewshot=1, batch_size=1, share_prefix=False)
    assert counting.calls and all(batch == 1 for batch, _ in counting.calls)
    assert len(counting.calls) == len(TEST)  # not 4 × len(TEST)


def test_shared_few_shot_prefix_runs_once_per_subject(model, tokenizer):
    counting = CountingModel(model)
    shared = score_multiple_choice(counting, tokenizer, TEST[:3], DEV, num_fewshot=2, batch_size=8)
    full = score_multiple_choice(model, tokenizer, TEST[:3], DEV, num_fewshot=2, batch_size=8, share_prefix=False)
    prefix_tokens = len(tokenizer(build_prompt(TEST[0], DEV[:2]).split("What colour is Mars")[0])["input_ids"])
    # One pass over the shared prefix, one batch of the three question suffixes.
    assert len(counting.calls) == 2
    assert counting.calls[0][0] == 1 and counting.calls[0][1] >= prefix_tokens
    # The byte-level tiny tokenizer splits " A" into a space and a letter: every letter shares the
    # input context + " ", so each question is still one row.
    longest = max(len(tokenizer(build_prompt(t, DEV[:2]) + " ")["input_ids"]) for t in TEST[:3])
    assert counting.calls[1] == (3, longest - counting.calls[0][1])
    for a, b in zip(shared, full):
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4)


@pytest.mark.parametrize("layout", ["batched", "blocks"])
def test_the_prefix_is_shared_with_the_model_as_transformers_calls_it(model, tokenizer, layout):
    """No wrapper: the cache argument must be found in the model's own forward signature."""
    calls = []
    hook = model.model.register_forward_hook(lambda module, args, kwargs, out: calls.append(
        tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        shared = score_multiple_choice(model, tokenizer, TEST[:3], DEV, num_fewshot=2, batch_size=8, layout=layout)
    finally:
        hook.remove()
    full = score_multiple_choice(model, tokenizer, TEST[:3], DEV, num_fewshot=2, batch_size=8, share_prefix=False,
                                 layout="batched")
    assert len(calls) == 2 and calls[0][0] == 1  # the prefix once, then the suffixes
    suffixes = [len(tokenizer(build_prompt(t, DEV[:2]) + " ")["input_ids"]) - calls[0][1] for t in TEST[:3]]
    # batched: the three suffixes as right-padded rows; blocks: end to end in one row, no padding
    assert calls[1] == ((3, max(suffixes)) if layout == "batched" else (1, sum(suffixes)))
    for a, b in zip(shared, full):
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4)
        assert a["prediction"] == b["prediction"]


def test_bos_adding_tokenizer_gets_a_bos_on_the_context_only(tokenizer):
    from tokenizers import processors

    with_bos = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer.__class__.from_str(
        tokenizer.backend_tokenizer.to_str()), bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    with_bos.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", with_bos.bos_token_id)])
    assert with_bos("ab")["input_ids"][0] == with_bos.bos_token_id
    request = make_request(with_bos, "Answer: ", "B")  # trailing space moves to the continuation
    assert request.context == tuple(with_bos("Answer:")["input_ids"])
    assert request.context[0] == with_bos.bos_token_id
    assert request.continuation == tuple(with_bos(" B", add_special_tokens=False)["input_ids"])
    empty = make_request(with_bos, "", "hi")
    assert empty.context == (with_bos.bos_token_id,)


def test_grouped_metrics_on_hand_made_results():
    """Subjects a = [1,0,1,1], b = [0,1], c = [1,1,0]; groups g1 = {a, b}, g2 = {c}.

    a: mean .75, s² = (3·.25² + .75²)/3 = .25, se = √(.25/4) = .25
    b: mean .5,  s² = .5,  se = √(.5/2) = .5
    c: mean 2/3, s² = 1/3, se = √(1/9) = 1/3
    overall micro: 6/9 = 2/3, s² = (6·(1/3)² + 3·(2/3)²)/8 = .25, se = √(.25/9) = 1/6
    overall macro: (.75 + .5 + 2/3)/3 = .638889, se = √(.0625 + .25 + 1/9)/3 = .216951
    g1 micro: 4/6, s² = (4/9 + 8/9)/5 = .266667, se = √(.266667/6) = .210819
    g1 macro: .625, se = √(.0625 + .25)/2 = .279508
    """
    scores = {"a": [1, 0, 1, 1], "b": [0, 1], "c": [1, 1, 0]}
    m = grouped_metrics(scores, {"g1": ("a", "b"), "g2": ("c",), "empty": ("z",)})
    assert m["acc"].value == pytest.approx(2 / 3) and m["acc"].stderr == pytest.approx(1 / 6) and m["acc"].n == 9
    assert m["acc_macro"].value == pytest.approx(0.638889, abs=1e-6)
    assert m["acc_macro"].stderr == pytest.approx(0.216951, abs=1e-6)
    assert m["g1/acc"].value == pytest.approx(2 / 3) and m["g1/acc"].stderr == pytest.approx(0.210819, abs=1e-6)
    assert m["g1/acc_macro"].value == pytest.approx(0.625) and m["g1/acc_macro"].stderr == pytest.approx(0.279508,
                                                                                                       abs=1e-6)
    assert m["g2/acc"].value == pytest.approx(2 / 3) and m["g2/acc"].stderr == pytest.approx(1 / 3)
    assert m["a/acc"].stderr == pytest.approx(0.25) and m["b/acc"].stderr == pytest.approx(0.5)
    assert "empty/acc" not in m


def test_mmlu_metrics_use_the_harness_categories():
    records = [{"subject": "anatomy", "correct": True}, {"subject": "anatomy", "correct": False},
               {"subject": "philosophy", "correct": True}, {"subject": "virology", "correct": True}]
    m = mmlu_metrics(records)
    assert m["stem/acc"].value == 0.5 and m["humanities/acc"].value == 1.0 and m["other/acc"].value == 1.0
    assert "social_sciences/acc" not in m
    assert m["acc"].value == 0.75 and m["acc_macro"].value == pytest.approx((0.5 + 1 + 1) / 3)
    assert m["philosophy/acc"].stderr is None and math.isclose(m["anatomy/acc"].stderr, 0.5)


def test_malformed_release_files_name_file_and_line(tmp_path):
    bad_answer = tmp_path / "anatomy_test.csv"
    bad_answer.write_text('"A question that spans\ntwo lines?",a,b,c,d,A\nQ2,a,b,c,d,E\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"anatomy_test\.csv, line 3, field 'answer'.*got 'E'"):
        read_split_file(bad_answer, "anatomy")
    columns = tmp_path / "virology_test.csv"
    columns.write_text("Q1,a,b,c,d,A\nQ2,a,b,c,D\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"virology_test\.csv, line 2: has 5 columns, expected 6"):
        read_split_file(columns, "virology")
    empty = tmp_path / "nutrition_test.csv"
    empty.write_text("Q1,a,b,c,d,A\n  ,a,b,c,d,B\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"nutrition_test\.csv, line 2, field 'question'"):
        read_split_file(empty, "nutrition")


def test_missing_subject_file_and_unknown_subject(tmp_path):
    (tmp_path / "mmlu" / "test").mkdir(parents=True)
    (tmp_path / "mmlu" / "test" / "anatomy_test.csv").write_text("Q,a,b,c,d,A\n")
    assert load_split(["anatomy"], "test", tmp_path)[0]["anatomy"][0]["answer"] == 0
    with pytest.raises(ConfigError, match="virology_test.csv.*does not exist"):
        load_split(["virology"], "test", tmp_path)
    from zoo.eval.mmlu import check_subjects

    with pytest.raises(ConfigError, match="did you mean 'anatomy'"):
        check_subjects(["anatomyy"])


def test_too_few_shots_is_an_error(model, tokenizer):
    with pytest.raises(ConfigError, match="3-shot needs 3 few-shot examples of subject 'virology'; there are 1"):
        score_multiple_choice(model, tokenizer, TEST[3:], DEV, num_fewshot=3)
