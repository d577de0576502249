"""ARC, HellaSwag and TruthfulQA: preprocessing, per-item scores, local files (real and malformed)."""
from __future__ import annotations

import json
import math

import pytest

from zoo.errors import ConfigError, DataError
from zoo.eval.choice import ChoiceItem, MultipleChoiceSuite
from zoo.eval.runner import make_suites
from zoo_plugins.suites.hellaswag import make_item, preprocess
from zoo_plugins.suites.truthfulqa import PREAMBLE, mc2_true_mass


def test_hellaswag_preprocessing_follows_the_harness():
    assert preprocess("  Mix the flour [title] Add eggs [step] slowly.  ") == "Mix the flour. Add eggs slowly."
    row = {"activity_label": "Baking cookies", "ctx_a": "A woman [header] mixes dough.", "ctx_b": "she",
           "endings": [" puts the tray in the oven [title] Bake.", "eats it."], "label": "1"}
    item = make_item("7", row)
    # ctx_b is capitalised, brackets dropped, the double space left by "[header]" collapsed.
    assert item.context == "Baking cookies: A woman mixes dough. She"
    assert item.choices == ["puts the tray in the oven. Bake.", "eats it."]
    assert item.gold == 1 and item.id == "7"


def test_accuracy_and_length_normalised_accuracy():
    """lls (−10, −12) for choices of 2 and 6 characters: acc picks choice 0; per character
    (−5, −2) acc_norm picks choice 1."""
    suite = make_suites(["arc_easy"])[0]
    item = ChoiceItem("q", "Question: ?\nAnswer:", ["ab", "abcdef"], gold=1)
    assert suite.item_scores(item, [-10.0, -12.0]) == {"acc": 0.0, "acc_norm": 1.0}
    assert suite.item_scores(item, [-10.0, -10.0]) == {"acc": 0.0, "acc_norm": 1.0}  # ties: the first


def test_truthfulqa_mc2_on_a_hand_made_example():
    """lls (−1, −2, −3), labels (1, 0, 1): (e^−1 + e^−3) / (e^−1 + e^−2 + e^−3)
    = (.367879 + .049787) / .553001 = .755272. Far-out lls keep the ratio: (−800, −801) with
    labels (1, 0) give 1 / (1 + e^−1) = .731059, where exponentiating directly gives 0/0."""
    assert mc2_true_mass([-1.0, -2.0, -3.0], [1, 0, 1]) == pytest.approx(0.755272, abs=1e-6)
    assert mc2_true_mass([-800.0, -801.0], [1, 0]) == pytest.approx(0.731059, abs=1e-6)
    suite = make_suites(["truthfulqa_mc2"])[0]
    item = ChoiceItem("0", "ctx", ["a", "b", "c"], gold=0, labels=[1, 0, 1])
    assert suite.item_scores(item, [-1.0, -2.0, -3.0])["acc"] == pytest.approx(0.755272, abs=1e-6)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_local_files_load_and_malformed_rows_name_file_and_line(tmp_path):
    arc = {"query": "Question: Which is a gas?", "choices": ["iron", "oxygen", "wood", "salt"], "gold": 1}
    write(tmp_path / "arc" / "arc_easy.jsonl", json.dumps(arc) + "\n\n" + json.dumps({**arc, "gold": 4}) + "\n")
    with pytest.raises(DataError, match=r"arc_easy\.jsonl, line 3, field 'gold': 4 is not the index"):
        make_suites(["arc_easy"])[0].load(tmp_path)
    write(tmp_path / "arc" / "arc_easy.jsonl", json.dumps(arc) + "\n")
    suite = make_suites(["arc_easy"])[0]
    suite.load(tmp_path)
    assert suite.items[0].context == "Question: Which is a gas?\nAnswer:" and suite.items[0].gold == 1

    swag = {"activity_label": "Running", "ctx_a": "A man runs.", "ctx_b": "he", "endings": ["stops.", "flies."],
            "label": 0}
    broken = {k: v for k, v in swag.items() if k != "endings"}
    write(tmp_path / "hellaswag" / "hellaswag_val.jsonl", json.dumps(swag) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(DataError, match=r"hellaswag_val\.jsonl, line 2, field 'endings': missing field"):
        make_suites(["hellaswag"])[0].load(tmp_path)

    good = {"question": "Q1?", "mc1_targets": {"yes": 1, "no": 0}, "mc2_targets": {"yes": 1, "maybe": 1, "no": 0}}
    bad = {"question": "Q2?", "mc1_targets": {"yes": 1, "no": 1}, "mc2_targets": {"yes": 1, "no": 0}}
    write(tmp_path / "truthfulqa" / "mc_task.json", json.dumps([good, bad], indent=2))
    mc2 = make_suites(["truthfulqa_mc2"])[0]
    mc2.load(tmp_path)
    assert [i.labels for i in mc2.items] == [[1, 1, 0], [1, 0]]
    # The second element of the indented list opens on line 14 (13 lines: "[" and the first object).
    with pytest.raises(DataError, match=r"mc_task\.json, line 14, field 'mc1_targets': has 2 answers labelled 1"):
        make_suites(["truthfulqa_mc1"])[0].load(tmp_path)
    write(tmp_path / "truthfulqa" / "mc_task.json", '[\n{"question": "Q?",\n "mc1_targets": {"a": 1,}}]')
    with pytest.raises(DataError, match=r"mc_task\.json, line 3: invalid JSON"):
        make_suites(["truthfulqa_mc1"])[0].load(tmp_path)


def test_missing_local_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="has no arc/arc_challenge.jsonl"):
        make_suites(["arc_challenge"])[0].load(tmp_path)


def test_real_release_files(shared_data):
    suites = {s.name: s for s in make_suites(["arc_easy", "arc_challenge", "hellaswag", "truthfulqa_mc1",
                                              "truthfulqa_mc2"])}
    for suite in suites.values():
        suite.load(shared_data, None if suite.name.startswith("truthfulqa") else 5)
    assert len(suites["arc_easy"].items) == 5 and len(suites["arc_challenge"].items[0].choices) == 4
    assert suites["hellaswag"].items[0].context == (
        "Pole vault: Pole vault is a sport where you run with a pole and stop and swing your body. A few women")
    assert suites["hellaswag"].items[0].gold == 3
    assert len(suites["truthfulqa_mc1"].items) == 817
    assert all(item.gold == 0 for item in suites["truthfulqa_mc1"].items)  # the true answer comes first
    first = suites["truthfulqa_mc2"].items[0]
    assert first.context == PREAMBLE + "\n\nQ: What happens if you eat a pomegranate?\nA:"
    assert first.labels == [1, 1, 1, 0, 0, 0]


class TinyChoices(MultipleChoiceSuite):
    name = "tiny_choices"

    def load_items(self, data_dir):
        return [ChoiceItem("0", "The sky is", ["blue", "green"], 0),
                ChoiceItem("1", "Two plus two is", ["four", "five", "six"], 2)], "inline"


def test_a_choice_suite_reports_means_and_samples(tokenizer):
    from zoo.eval.loglik import loglikelihoods
    from zoo.tiny import tiny_model

    model = tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
    suite = TinyChoices()
    suite.load()
    from zoo.eval import EvalContext

    result = suite.run(model, tokenizer, EvalContext(batch_size=2))
    expected = loglikelihoods(model, tokenizer, [(i.context, " " + c) for i in suite.items for c in i.choices],
                              share_prefix=False)
    assert result.samples[0]["loglikelihoods"] == pytest.approx([s for s, _ in expected[:2]], abs=1e-5)
    accs = [s["acc"] for s in result.samples]
    assert result.metrics["acc"].value == pytest.approx(sum(accs) / 2)
    assert result.metrics["acc"].n == 2 and math.isfinite(result.metrics["acc_norm"].value)
