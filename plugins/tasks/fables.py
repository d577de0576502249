"""``fables``: the built-in head-to-head task, a small synthetic language of animal stories.

Modelled on the controlled-sentiment experiment of the DPO paper (continue a prompt so that the
text is positive) and on Gao et al.'s gold/proxy set-up (a programmatic gold reward labels the
preferences; a proxy reward model learnt from them is what most algorithms optimise). Nothing is
downloaded: the world, the corpus and the tokenizer are generated from ``world_seed``.

The language. Sixteen animals, each with a home, a food and a fur colour fixed by the world
seed; sentences follow a handful of templates::

    the fox lives in the forest .      the fox eats berries .      the fox has red fur .
    the fox is brave .                 the fox is lazy and kind .  the fox sees the owl .
    the fox walks to the lake .        the fox swims in the river .   the fox sleeps .

A prompt names the animal and opens the story with one action (``story about the fox : the fox
walks to the lake .``); a response is a few more sentences. The split is by *animal*, not by
string: ``world_seed`` sets aside ``test_animals`` (4) and ``validation_animals`` (3) of the 16
animals, and no demonstration, preference or online-training prompt names one of them. A test
prompt therefore asks about an animal the policy was never aligned on (the pretraining stories,
the model's world knowledge, do mention every animal): the gold reward measures whether praising
the prompt's animal generalises, not whether a prompt seen in training was memorised.

The gold reward of a response to a prompt about animal ``S`` (a sum of integers):

* +1 for each *distinct* positive trait the response gives ``S`` (``the fox is brave .``);
* −1 for each negative trait it gives ``S``; traits of other animals count for nothing;
* −1 for each sentence outside the grammar, each repeated sentence, each sentence beyond
  ``MAX_SENTENCES`` (3), and for an unfinished last sentence (or an empty response).

The SFT demonstrations use positive and negative traits equally often, so the SFT policy shows
the property sometimes; the reward is bounded (``2 × MAX_SENTENCES``), and the texts that raise
a learnt proxy reward most cheaply (repeating a praise, praising another animal, chaining more
adjectives than the grammar allows, running on) are the ones the penalties catch: a proxy can be
over-optimised, and staying close to the SFT policy matters.

Knowledge probes ask for every animal's home, food and fur colour in MMLU's four-choice format
(scored by the MMLU code path). The pretraining corpus states every fact and quizzes it with the
very items the verbatim probes use, so those ask whether the model still recalls a fact in the
form it was taught. For half of the animals (:func:`practice_animals`, by world seed) it also
states each fact in other words (``the home of the fox is the forest .``). The held-out probes
(the alignment-tax probe) are cloze items on the *other* half's facts in those words (``the home
of the wolf is the`` + one of four places, two fresh draws of the wrong choices per fact),
scored by the log-likelihood of each choice as lm-evaluation-harness scores ARC: no pretraining
text states those animals' facts so, and the model answers from what it knows (the fact
sentences) and the phrasing it learnt on other animals, not by rote. A 106k-parameter model
cannot learn MMLU's letter lookup for freshly ordered choices in 600 steps (it stays at chance),
which is why the held-out probe is a cloze; the SFT model passes it well above chance (0.25).

One file per task (the plugin convention): the world, its text generators, the gold reward and
the probes belong together, hence its length.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo import ConfigError, RewardConfig, RewardFunction, hookimpl
from zoo.bench import Task, TaskData
from zoo.eval import description, format_question

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

ANIMALS = ["fox", "owl", "bear", "frog", "crow", "deer", "wolf", "hare",
           "seal", "mole", "lynx", "swan", "toad", "wren", "newt", "boar"]
HOMES = ["forest", "river", "desert", "cave", "meadow", "lake", "hill", "marsh"]
FOODS = ["berries", "fish", "seeds", "mice", "leaves", "worms", "honey", "grass"]
COLOURS = ["red", "brown", "grey", "white", "black", "gold", "green", "blue"]
POSITIVE = ["brave", "kind", "clever", "gentle", "calm", "happy", "friendly", "honest"]
NEGATIVE = ["cruel", "lazy", "rude", "sad", "angry", "dull", "nasty", "greedy"]
PROBE_SUBJECT = "animals"
GOLD_REWARD = "fables_gold"
#: Sentences that earn reward; each one past this costs 1.
MAX_SENTENCES = 3
WORD = re.compile(r"\n|[A-Za-z]+|[^\sA-Za-z]")
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}

#: The same facts in other words: pretraining states them so for the ``practice_animals`` only;
#: the held-out probes ask the other animals' facts this way, as a cloze.
PARAPHRASES = {
    "home": "the home of the {a} is the",
    "food": "the food of the {a} is",
    "colour": "the fur colour of the {a} is",
}
RELATIONS = {  # relation → (question, the world's table, the sentence stating it)
    "home": ("where does the {a} live ?", HOMES, "the {a} lives in the {x} ."),
    "food": ("what does the {a} eat ?", FOODS, "the {a} eats {x} ."),
    "colour": ("what colour is the fur of the {a} ?", COLOURS, "the {a} has {x} fur ."),
}


# ----- the gold reward ---------------------------------------------------------------------------

_ANIMAL = "|".join(ANIMALS)
_TRAIT = "|".join(POSITIVE + NEGATIVE)
_GRAMMAR = [re.compile(pattern) for pattern in (
    rf"the ({_ANIMAL}) lives in the ({'|'.join(HOMES)})",
    rf"the ({_ANIMAL}) eats ({'|'.join(FOODS)})",
    rf"the ({_ANIMAL}) has ({'|'.join(COLOURS)}) fur",
    rf"the ({_ANIMAL}) (walks to|swims in) the ({'|'.join(HOMES)})",
    rf"the ({_ANIMAL}) (sleeps|sings|runs)",
    rf"the ({_ANIMAL}) sees the ({_ANIMAL})",
)]
_TRAITS = re.compile(rf"the ({_ANIMAL}) is ({_TRAIT})(?: and ({_TRAIT}))?")


def words(text: str) -> list[str]:
    """The language's tokens: words, punctuation and newlines (spacing does not matter)."""
    return WORD.findall(text)


def prompt_subject(prompt: str) -> str | None:
    """The animal a prompt asks about: the one after ``about the``, else the last animal it names."""
    tokens = words(prompt)
    for i in range(len(tokens) - 2):
        if tokens[i] == "about" and tokens[i + 1] == "the" and tokens[i + 2] in ANIMALS:
            return tokens[i + 2]
    named = [w for w in tokens if w in ANIMALS]
    return named[-1] if named else None


def gold_reward(prompt: str, response: str) -> float:
    """The gold reward of ``response`` to ``prompt`` (see the module docstring)."""
    subject = prompt_subject(prompt)
    tokens = [w for w in words(response) if w != "\n"]
    if not tokens:
        return -1.0
    *sentences, tail = " ".join(tokens).split(" .")
    reward = -1.0 if tail.strip() else 0.0
    seen_sentences: set[str] = set()
    credited: set[str] = set()
    for number, sentence in enumerate(s.strip() for s in sentences):
        if sentence in seen_sentences or number >= MAX_SENTENCES:
            reward -= 1
            continue
        seen_sentences.add(sentence)
        traits = _TRAITS.fullmatch(sentence)
        if traits is not None:
            animal, *adjectives = traits.groups()
            adjectives = [a for a in adjectives if a is not None]
            if len(set(adjectives)) < len(adjectives):
                reward -= 1  # "is brave and brave"
                continue
            if animal == subject:
                for adjective in adjectives:
                    if adjective in NEGATIVE:
                        reward -= 1
                    elif adjective not in credited:
                        credited.add(adjective)
                        reward += 1
        elif not any(rule.fullmatch(sentence) for rule in _GRAMMAR) or _self_sighting(sentence):
            reward -= 1
    return reward


def _self_sighting(sentence: str) -> bool:
    match = _GRAMMAR[-1].fullmatch(sentence)
    return match is not None and match.group(1) == match.group(2)


def gold_rewards(prompts: list[str], responses: list[str]) -> list[float]:
    return [gold_reward(p, r) for p, r in zip(prompts, responses)]


# ----- the world and its texts --------------------------------------------------------------------


@dataclass
class FablesArgs:
    #: Seed of the world (each animal's home, food, colour) and of every generated text.
    world_seed: int = 0
    pretraining_stories: int = 3000
    #: Copies of each animal's fact sheet and of each knowledge quiz in the pretraining corpus.
    fact_repeats: int = 20
    demonstrations: int = 2000
    #: Prompts (drawn with repeats from the train split) the preference data and online runs use.
    train_prompts: int = 1024
    #: Animals held out of every training prompt: the validation prompts (hyperparameter
    #: selection) ask about the first, the test prompts (every reported number) about the second.
    validation_animals: int = 3
    test_animals: int = 4
    #: Distinct held-out prompts, drawn from those animals' prompts (19 per animal).
    validation_prompts: int = 57
    test_prompts: int = 76
    #: Share of trait adjectives in the demonstrations that are positive (their "quality").
    demo_positive_share: float = 0.5

    def __post_init__(self) -> None:
        for key in ("pretraining_stories", "demonstrations", "train_prompts", "validation_prompts", "test_prompts",
                    "validation_animals", "test_animals"):
            if getattr(self, key) < 1:
                raise ConfigError(f"task.args.{key} = {getattr(self, key)!r}: must be >= 1")
        held_out = self.validation_animals + self.test_animals
        if held_out > len(ANIMALS) - 1:
            raise ConfigError(f"task.args.validation_animals + test_animals = {held_out}: the language has "
                              f"{len(ANIMALS)} animals and the train split needs at least one; hold out at most "
                              f"{len(ANIMALS) - 1}")
        per_animal = len(ALL_PROMPTS) // len(ANIMALS)
        for split in ("validation", "test"):
            prompts, animals = getattr(self, f"{split}_prompts"), getattr(self, f"{split}_animals")
            if prompts > animals * per_animal:
                raise ConfigError(f"task.args.{split}_prompts = {prompts}: {animals} held-out animal(s) have "
                                  f"{animals * per_animal} distinct prompts ({per_animal} each); raise "
                                  f"task.args.{split}_animals or lower {split}_prompts")
        if self.fact_repeats < 0:
            raise ConfigError(f"task.args.fact_repeats = {self.fact_repeats!r}: must be >= 0")
        if not 0 <= self.demo_positive_share <= 1:
            raise ConfigError(f"task.args.demo_positive_share = {self.demo_positive_share!r}: must be in [0, 1]")


class World:
    """Each animal's facts, and generators of sentences, stories and quizzes about them."""

    def __init__(self, seed: int):
        rng = random.Random(seed)
        self.facts = {animal: {relation: rng.choice(table) for relation, (_, table, _) in RELATIONS.items()}
                      for animal in ANIMALS}

    def fact_sentence(self, animal: str, relation: str) -> str:
        return RELATIONS[relation][2].format(a=animal, x=self.facts[animal][relation])

    def paraphrase_sentence(self, animal: str, relation: str) -> str:
        return PARAPHRASES[relation].format(a=animal) + f" {self.facts[animal][relation]} ."

    def trait_sentence(self, rng: random.Random, animal: str, positive_share: float) -> str:
        count = rng.choice([1, 1, 2])
        chosen: list[str] = []
        while len(chosen) < count:
            adjective = rng.choice(POSITIVE if rng.random() < positive_share else NEGATIVE)
            if adjective not in chosen:
                chosen.append(adjective)
        return f"the {animal} is {' and '.join(chosen)} ."

    def action_sentence(self, rng: random.Random, animal: str) -> str:
        kind = rng.randrange(3)
        if kind == 0:
            return f"the {animal} {rng.choice(['walks to', 'swims in'])} the {rng.choice(HOMES)} ."
        if kind == 1:
            return f"the {animal} {rng.choice(['sleeps', 'sings', 'runs'])} ."
        other = rng.choice([a for a in ANIMALS if a != animal])
        return f"the {animal} sees the {other} ."

    def story(self, rng: random.Random, animal: str, sentences: int, positive_share: float) -> str:
        """Sentences about ``animal``: true facts, traits, actions, and now and then another animal."""
        out: list[str] = []
        while len(out) < sentences:
            roll = rng.random()
            if roll < 0.25:
                part = [self.fact_sentence(animal, rng.choice(list(RELATIONS)))]
            elif roll < 0.6:
                part = [self.trait_sentence(rng, animal, positive_share)]
            elif roll < 0.85:
                part = [self.action_sentence(rng, animal)]
            else:
                other = rng.choice([a for a in ANIMALS if a != animal])
                part = [f"the {animal} sees the {other} .", self.trait_sentence(rng, other, positive_share)]
            if len(out) + len(part) <= sentences and not set(part) & set(out):
                out += part
        return " ".join(out)

    def quiz(self, rng: random.Random, animal: str, relation: str) -> dict:
        """An MMLU-format item asking for one fact, with three wrong choices in random order."""
        question, table, _ = RELATIONS[relation]
        answer = self.facts[animal][relation]
        choices = rng.sample([x for x in table if x != answer], 3) + [answer]
        rng.shuffle(choices)
        return {"subject": PROBE_SUBJECT, "question": question.format(a=animal), "choices": choices,
                "answer": choices.index(answer)}

    def cloze(self, rng: random.Random, animal: str, relation: str) -> dict:
        """A held-out probe item: the paraphrased statement of one fact, to be completed by one of
        four choices (three wrong ones drawn at random), scored by each choice's log-likelihood."""
        _, table, _ = RELATIONS[relation]
        answer = self.facts[animal][relation]
        choices = rng.sample([x for x in table if x != answer], 3) + [answer]
        rng.shuffle(choices)
        return {"context": PARAPHRASES[relation].format(a=animal), "choices": choices, "answer": choices.index(answer)}


def quiz_text(item: dict) -> str:
    """A quiz as the MMLU code path lays it out zero-shot, followed by its answer."""
    return description(item["subject"]) + format_question(item, include_answer=True)


def prompt(animal: str, opening: str = "") -> str:
    return f"story about the {animal} :" + (f" {opening}" if opening else "")


def openings(animal: str) -> list[str]:
    """The opening sentences a prompt can carry: the animal walks to / swims in a place, or acts."""
    out = [f"the {animal} {verb} the {home} ." for verb in ("walks to", "swims in") for home in HOMES]
    return out + [f"the {animal} {verb} ." for verb in ("sleeps", "sings", "runs")]


#: Every distinct prompt of the language, in a fixed order.
ALL_PROMPTS = [prompt(animal, opening) for animal in ANIMALS for opening in openings(animal)]


def split_animals(seed: int, validation: int, test: int) -> tuple[list[str], list[str], list[str]]:
    """Disjoint (train, validation, test) animal lists, shuffled by ``seed``; train takes the rest."""
    order = list(ANIMALS)
    random.Random(seed).shuffle(order)
    return order[validation + test:], order[:validation], order[validation: validation + test]


def split_prompts(seed: int, args: FablesArgs) -> tuple[list[str], list[str], list[str]]:
    """(train, validation, test) prompts, disjoint in content: each split's prompts name only its
    own animals (:func:`split_animals`); the held-out splits keep ``args.*_prompts`` of theirs."""
    animals = split_animals(seed, args.validation_animals, args.test_animals)
    train, validation, test = ([p for p in ALL_PROMPTS if prompt_subject(p) in chosen] for chosen in animals)
    rng = random.Random(seed + 1)
    rng.shuffle(validation)
    rng.shuffle(test)
    return train, validation[: args.validation_prompts], test[: args.test_prompts]


def practice_animals(seed: int) -> list[str]:
    """The half of the animals whose facts pretraining also states in the ``PARAPHRASES`` words; the
    held-out probes ask about the other half."""
    order = list(ANIMALS)
    random.Random(seed).shuffle(order)
    return sorted(order[: len(order) // 2], key=ANIMALS.index)


class Fables(Task):
    name = "fables"
    description = "animal stories in a synthetic language; gold reward = praise of the prompt's animal, minus degenerate text"
    version = "4"
    Args = FablesArgs

    def build(self) -> TaskData:
        a = self.args
        world = World(a.world_seed)
        rng = random.Random(a.world_seed + 1)
        probe_rng = random.Random(a.world_seed + 2)
        probes = [world.quiz(probe_rng, animal, relation) for animal in ANIMALS for relation in RELATIONS]
        practice = practice_animals(a.world_seed + 5)
        heldout_rng = random.Random(a.world_seed + 4)
        heldout_probes = [world.cloze(heldout_rng, animal, relation)
                          for animal in ANIMALS if animal not in practice for relation in RELATIONS
                          for _ in range(2)]
        pretraining = [{"text": world.story(rng, rng.choice(ANIMALS), rng.randint(2, 5), 0.5)}
                       for _ in range(a.pretraining_stories)]
        for _ in range(a.fact_repeats):
            for animal in ANIMALS:
                relations = list(RELATIONS)
                rng.shuffle(relations)
                pretraining.append({"text": " ".join(world.fact_sentence(animal, r) for r in relations)})
                if animal in practice:
                    rng.shuffle(relations)
                    pretraining.append({"text": " ".join(world.paraphrase_sentence(animal, r) for r in relations)})
            pretraining += [{"text": quiz_text(item)} for item in probes]
        rng.shuffle(pretraining)
        train_pool, validation, test = split_prompts(a.world_seed + 3, a)
        demonstrations = []
        for _ in range(a.demonstrations):
            text = rng.choice(train_pool)
            animal = prompt_subject(text)
            demonstrations.append({"prompt": text,
                                   "completion": world.story(rng, animal, rng.randint(2, MAX_SENTENCES),
                                                             a.demo_positive_share)})
        return TaskData(
            pretraining=pretraining,
            demonstrations=demonstrations,
            train_prompts=[rng.choice(train_pool) for _ in range(a.train_prompts)],
            validation_prompts=validation,
            test_prompts=test,
            probes=probes,
            probe_fewshot=[],
            heldout_probes=heldout_probes,
            max_new_tokens=8 * MAX_SENTENCES,
        )

    def tokenizer(self) -> PreTrainedTokenizerFast:
        return fables_tokenizer()

    def gold_reward(self) -> RewardConfig:
        return RewardConfig(function=GOLD_REWARD)


def vocabulary() -> list[str]:
    """Every word of the language and of the MMLU prompt format, in a fixed order."""
    probe = {"subject": PROBE_SUBJECT, "question": "q", "choices": ["a", "b", "c", "d"], "answer": 0}
    fixed = words(quiz_text(probe)) + ["story", "about", ":", "."]
    for question, _, sentence in RELATIONS.values():
        fixed += words(question) + words(sentence)
    for question in PARAPHRASES.values():
        fixed += words(question)
    grammar = ["is", "and", "walks", "to", "swims", "in", "sleeps", "sings", "runs", "sees"]
    table = ANIMALS + HOMES + FOODS + COLOURS + POSITIVE + NEGATIVE + grammar + fixed
    return list(dict.fromkeys(w for w in table if w not in ("{", "}", "a", "x", "q", "b", "c", "d")))


def fables_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer for the language: one token per word, punctuation mark or newline."""
    # Imported here: every command loads this plugin, and transformers costs seconds to import.
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS.values())}
    for word in vocabulary():
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[ \t]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(WORD.pattern), behavior="isolated"),
    ])
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS, model_max_length=512)


@hookimpl
def zoo_register_tasks(register):
    register(Fables)


@hookimpl
def zoo_register_rewards(register):
    register(RewardFunction(GOLD_REWARD, gold_rewards,
                            "gold reward of the fables task: distinct praise of the prompt's animal minus "
                            "penalties for degenerate text"))
