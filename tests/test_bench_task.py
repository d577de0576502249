"""The built-in ``fables`` task: its gold reward, tokenizer, data and preference labelling."""
from __future__ import annotations

import random

import pytest

from zoo.bench.preferences import distinct_responses, heldout_pairs, label, plackett_luce_order
from zoo.eval.mmlu import build_prompt
from zoo.registry import get_registry
from zoo.rewards.loading import load_reward_source
from zoo.config import RewardConfig
from zoo.bench.task import check_splits
from zoo_plugins.tasks.fables import (ALL_PROMPTS, ANIMALS, PARAPHRASES, POSITIVE, Fables, FablesArgs, World,
                                     fables_tokenizer, gold_reward, practice_animals, prompt_subject, quiz_text,
                                     split_prompts)

FOX = "story about the fox :"


@pytest.mark.parametrize("response, expected", [
    # +1 per distinct positive trait of the prompt's animal
    ("the fox is brave and kind . the fox is clever .", 3.0),
    # a negative trait costs 1, a fact or an action is neutral
    ("the fox is lazy . the fox eats honey . the fox sleeps .", -1.0),
    # the same praise twice: credited once, and the repeated sentence costs 1
    ("the fox is brave . the fox is brave .", 0.0),
    # a repeated adjective inside one sentence costs 1 and earns nothing
    ("the fox is brave and brave .", -1.0),
    # praise of another animal earns nothing
    ("the fox sees the owl . the owl is kind and calm .", 0.0),
    # three adjectives are outside the grammar
    ("the fox is brave and kind and calm .", -1.0),
    # an unfinished last sentence costs 1 (the finished one still counts)
    ("the fox is kind . the fox is", 0.0),
    # sentences past the third cost 1 each and earn nothing
    ("the fox is brave . the fox is kind . the fox is calm . the fox is happy .", 2.0),
    # nonsense and self-sightings are outside the grammar
    ("fox the . the fox sees the fox .", -2.0),
    # spacing and newlines do not matter
    ("the fox is   brave.\nthe fox is kind .", 2.0),
    ("", -1.0),
])
def test_gold_reward_on_hand_made_responses(response, expected):
    assert gold_reward(FOX, response) == expected


def test_gold_reward_follows_the_prompt_subject_and_is_registered():
    assert prompt_subject("story about the owl :") == "owl"
    assert gold_reward("story about the owl :", "the fox is kind .") == 0.0
    assert gold_reward("story about the owl :", "the owl is kind .") == 1.0
    source = load_reward_source(RewardConfig(function="fables_gold"))
    assert source.score([FOX, FOX], ["the fox is kind .", "the fox is rude ."]).tolist() == [1.0, -1.0]
    assert get_registry().get("tasks", "fables") is Fables


def test_tokenizer_is_word_level_with_bos_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = fables_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    ids = loaded("the fox is brave .")["input_ids"]
    assert loaded.convert_ids_to_tokens(ids) == ["<s>", "the", "fox", "is", "brave", "."]
    assert loaded.decode(ids, skip_special_tokens=True) == "the fox is brave ."
    assert loaded.unk_token_id not in loaded(FOX)["input_ids"]


def test_task_data_is_deterministic_and_probes_are_taught_verbatim():
    task = Fables(FablesArgs(pretraining_stories=20, fact_repeats=1, demonstrations=10, train_prompts=5,
                             validation_prompts=32, test_prompts=64))
    data, again = task.build(), task.build()
    assert data.demonstrations == again.demonstrations and data.pretraining == again.pretraining
    assert len(data.probes) == 3 * len(ANIMALS)
    corpus = {row["text"] for row in data.pretraining}
    world = World(0)
    for item in data.probes:
        assert item["choices"][item["answer"]] in world.facts[prompt_subject(item["question"])].values()
        assert quiz_text(item) in corpus
        # the corpus text is exactly what the MMLU code path scores, followed by the answer letter
        assert quiz_text(item) == build_prompt(item, []) + " " + "ABCD"[item["answer"]]
    tokenizer = fables_tokenizer()
    for row in data.pretraining + data.demonstrations:
        text = row.get("text") or row["prompt"] + " " + row["completion"]
        assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"]
    for row in data.demonstrations:
        assert gold_reward(row["prompt"], row["completion"]) > -4
    assert len(set(data.test_prompts)) == 64 and len(set(data.validation_prompts)) == 32
    check_splits("fables", data)  # disjoint


def test_test_prompts_are_held_out_in_content():
    """No training, demonstration or validation prompt names an animal a test prompt asks about."""
    data = Fables(FablesArgs(pretraining_stories=20, fact_repeats=1, demonstrations=400, train_prompts=300)).build()
    subjects = {split: {prompt_subject(p) for p in prompts} for split, prompts in
                (("train", data.train_prompts + [r["prompt"] for r in data.demonstrations]),
                 ("validation", data.validation_prompts), ("test", data.test_prompts))}
    assert len(subjects["test"]) == 4 and len(subjects["validation"]) == 3 and len(subjects["train"]) == 9
    assert not subjects["test"] & (subjects["train"] | subjects["validation"])
    assert not subjects["validation"] & subjects["train"]
    # every prompt of the held-out animals, by default
    assert len(data.test_prompts) == 4 * 19 and len(data.validation_prompts) == 3 * 19
    for prompt in data.train_prompts + data.validation_prompts:
        assert not any(f" {animal} " in f" {prompt} " for animal in subjects["test"])


def test_heldout_probes_are_clozes_no_pretraining_text_contains():
    data = Fables(FablesArgs(pretraining_stories=200, fact_repeats=3, demonstrations=10, train_prompts=5)).build()
    world, practice, tokenizer = World(0), practice_animals(5), fables_tokenizer()
    corpus = " ".join(row["text"] for row in data.pretraining)
    assert len(practice) == 8 and len(data.heldout_probes) == 8 * 3 * 2
    for item in data.heldout_probes:
        animal = prompt_subject(item["context"])
        assert animal not in practice
        answer = item["choices"][item["answer"]]
        assert answer in world.facts[animal].values() and len(set(item["choices"])) == 4
        assert item["context"] not in corpus  # no text states this animal's fact in these words
        for choice in item["choices"]:
            assert tokenizer.unk_token_id not in tokenizer(f"{item['context']} {choice}")["input_ids"]
    for animal in practice:  # the other half's facts are stated in those words
        for relation, words in PARAPHRASES.items():
            assert f"{words.format(a=animal)} {world.facts[animal][relation]} ." in corpus


def test_prompt_splits_are_disjoint_and_overlaps_are_refused():
    from zoo import ConfigError
    from zoo.bench import TaskData

    train, validation, test = split_prompts(3, FablesArgs(validation_prompts=57, test_prompts=76))
    assert len(train) + len(validation) + len(test) == len(ALL_PROMPTS) == 16 * 19
    assert len(set(train) | set(validation) | set(test)) == len(ALL_PROMPTS)
    assert split_prompts(3, FablesArgs()) == (train, validation, test) and split_prompts(4, FablesArgs())[2] != test
    assert prompt_subject("story about the fox : the fox sees the owl .") == "fox"
    overlapping = TaskData(None, [], train_prompts=["a", "b"], validation_prompts=["c"], test_prompts=["b", "d"])
    with pytest.raises(ConfigError, match=r"1 prompt\(s\) are in both the train and the test split \(e.g. 'b'\)"):
        check_splits("demo", overlapping)
    with pytest.raises(ConfigError, match="no validation prompts"):
        check_splits("demo", TaskData(None, [], ["a"], [], ["d"]))
    with pytest.raises(ConfigError, match="validation_animals \\+ test_animals = 16"):
        FablesArgs(validation_animals=8, test_animals=8)
    with pytest.raises(ConfigError, match=r"test_prompts = 77: 4 held-out animal\(s\) have 76 distinct prompts"):
        FablesArgs(test_prompts=77)


def test_probe_answers_are_the_world_facts():
    world = World(3)
    item = world.quiz(random.Random(0), "fox", "home")
    assert item["choices"][item["answer"]] == world.facts["fox"]["home"]
    assert len(set(item["choices"])) == 4


def test_task_args_are_validated():
    from zoo import ConfigError

    with pytest.raises(ConfigError, match="task.args.demonstrations"):
        FablesArgs(demonstrations=0)
    with pytest.raises(ConfigError, match="world_seed"):
        Fables.parse_args({"world_sed": 1})


def test_plackett_luce_pairs_follow_bradley_terry():
    """With rewards (1, 0) and T = 1 the first item should win with probability σ(1) = 0.7311."""
    rng = random.Random(0)
    wins = sum(plackett_luce_order([1.0, 0.0], 1.0, rng)[0] == 0 for _ in range(20000))
    assert wins / 20000 == pytest.approx(0.7311, abs=0.015)
    assert plackett_luce_order([0.0, 2.0, 1.0], 0.0, rng) == [1, 2, 0]


def test_labelling_keeps_distinct_responses_and_orders_pairs_by_the_ranking():
    gold = load_reward_source(RewardConfig(function="fables_gold"))
    samples = ["the fox is rude .", "the fox is kind .", "the fox is kind .", " ", "the fox is kind and calm ."]
    assert distinct_responses(samples) == ["the fox is rude .", "the fox is kind .", "the fox is kind and calm ."]
    ranked, pair, rewards = label(FOX, samples, gold, 0.0, random.Random(0))
    assert rewards == [-1.0, 1.0, 2.0]
    assert ranked["responses"] == ["the fox is kind and calm .", "the fox is kind .", "the fox is rude ."]
    assert ranked["scores"] == [2.0, 1.0, 0.0]
    assert (pair["chosen"], pair["rejected"]) == ("the fox is kind .", "the fox is rude .")
    assert label(FOX, ["the fox is kind .", "the fox is kind ."], gold, 1.0, random.Random(0))[0] is None
    held = heldout_pairs([FOX], [["the fox is rude .", "the fox is kind .", "the fox runs .", "the fox sleeps ."]],
                         gold, limit=10)
    assert held == [{"prompt": FOX, "chosen": "the fox is kind .", "rejected": "the fox is rude ."}]


def test_positive_words_are_all_in_the_vocabulary():
    tokenizer = fables_tokenizer()
    assert all(tokenizer.convert_tokens_to_ids(word) != tokenizer.unk_token_id for word in POSITIVE)


def test_hh_task_reads_prompts_and_demonstrations_and_needs_a_gold_model(shared_data):
    from zoo import ConfigError
    from zoo_plugins.tasks.hh import AnthropicHH, HHArgs

    with pytest.raises(ConfigError, match="task.args.gold_reward_model is required"):
        AnthropicHH.parse_args({})
    source = str(next((shared_data / "hh-rlhf").glob("*.jsonl.gz")))
    task = AnthropicHH(HHArgs(data=source, demonstrations=5, train_prompts=3, validation_prompts=2, test_prompts=4,
                              gold_reward_model="models/gold-rm"))
    data = task.build()
    assert len(data.demonstrations) == 5 and len(data.train_prompts) == 3 and len(data.test_prompts) == 4
    assert len(data.validation_prompts) == 2
    check_splits("hh", data)
    assert all(row["prompt"].rstrip().endswith("Assistant:") for row in data.demonstrations)
    assert not set(data.train_prompts) & {row["prompt"] for row in data.demonstrations}
    assert data.pretraining is None and task.tokenizer() is None
    assert task.gold_reward().model == "models/gold-rm"
