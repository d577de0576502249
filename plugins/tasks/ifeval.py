"""``ifeval``: verifiable instruction following on real prompts (IFEval-style, Zhou et al. 2023).

Each prompt is a real question or request read from ``data`` (HH human turns, TruthfulQA or
ARC questions, ...) followed by one to ``max_constraints`` instructions whose compliance a
program checks, worded as IFEval words them (its instruction ids in brackets):

* all lower case (``change_case:english_lowercase``): the response has cased letters, none upper;
* word count (``length_constraints:number_words``): "at least N" (≥ N) or "less than N" (< N)
  words, a word being a run of ``\\w`` characters;
* sentence count (``length_constraints:number_sentences``): at least / less than N sentences,
  a sentence being a run of text ended by ``.``, ``!`` or ``?`` (or by the end of the text);
* keywords included (``keywords:existence``): every keyword occurs, case-insensitively;
* keyword excluded (``keywords:forbidden_words``): no keyword occurs as a whole word;
* fixed ending (``startend:end_checker``): the response, stripped of spaces and then of double
  quotes, ends with the phrase, ignoring case;
* no commas (``punctuation:no_comma``);
* bullet points (``detectable_format:number_bullet_lists``): exactly N lines that are markdown
  bullets (``* item`` or ``- item``);
* valid JSON (``detectable_format:json_format``): the response, stripped of a surrounding markdown
  code fence, parses as JSON.

The gold reward is the fraction of a prompt's instructions the response follows, **strict** as
IFEval's ``test_instruction_following_strict`` checks (the response as it is; an empty response
follows nothing). IFEval's **loose** score is reported beside it as a judge: an instruction is
followed when it holds for any of eight variants (the response, without its first line, without
its last line, without both, and each of those with every ``*`` removed). Both are functions of
(prompt, response) alone: the instructions are read back from the prompt text, so the reward can
be recomputed from a saved sample, and GRPO, RLOO, online DPO and PPO can optimise it directly.

Instructions are drawn per prompt from ``constraint_seed`` and the question's content key;
questions are deduplicated and split by content (:func:`zoo.bench.split_order`), so no question
is in two splits under different instructions. ``template`` renders the prompt with a model's
chat template (``smollm2``, the bench model; null keeps the plain text).

Verifiers are written here rather than taken from ``reasoning-gym`` (0.1.25): its generators are
arithmetic and puzzle tasks with their own scorers, not IFEval's instructions, and it pins many
dependencies.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from zoo import ConfigError, RewardConfig, RewardFunction, hookimpl
from zoo.bench import Judge, Task, TaskData, chat_renderer, content_key, split_order
from zoo.data import read_rows

GOLD_REWARD = "ifeval_strict"
LOOSE = "ifeval_loose"
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_BULLET = re.compile(r"^\s*(?:\*[^*]|-).*$", re.MULTILINE)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


# ----- the checks: (response, parameters) -> followed or not --------------------------------------

def is_lowercase(text: str) -> bool:
    return text.islower()


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Sentences ended by ``.``/``!``/``?`` (a run of them is one end), plus an unfinished last one."""
    parts = [p for p in _SENTENCE_END.split(text) if p.strip()]
    return len(parts)


def compare(count: int, relation: str, n: int) -> bool:
    return count >= n if relation == "at least" else count < n


def includes_keywords(text: str, keywords: list[str]) -> bool:
    return all(re.search(re.escape(k), text, re.IGNORECASE) for k in keywords)


def excludes_keywords(text: str, keywords: list[str]) -> bool:
    return not any(re.search(r"\b" + re.escape(k) + r"\b", text, re.IGNORECASE) for k in keywords)


def ends_with(text: str, phrase: str) -> bool:
    return text.strip().strip('"').lower().endswith(phrase.strip().lower())


def count_bullets(text: str) -> int:
    return len(_BULLET.findall(text))


def is_json(text: str) -> bool:
    body = _FENCE.sub("", text.strip()).strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


# ----- the instructions: how each is worded, read back and checked ----------------------------------

@dataclass(frozen=True)
class Kind:
    """One instruction kind: its wording, a pattern reading it back from a prompt, and its check."""

    name: str
    pattern: re.Pattern
    check: Callable[[str, re.Match], bool]
    draw: Callable[[random.Random], str]


def _keyword_list(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


KEYWORDS = ["answer", "example", "important", "reason", "simple", "people", "time", "world", "idea", "because"]
FORBIDDEN = ["very", "really", "just", "thing", "like", "good", "think", "many"]
ENDINGS = ["Is there anything else I can help with?", "Let me know if you have additional questions.",
           "Any other questions?"]

KINDS = (
    Kind("english_lowercase",
         re.compile(r"Your entire response should be in English, and in all lowercase letters\. "
                    r"No capital letters are allowed\."),
         lambda text, m: is_lowercase(text),
         lambda rng: "Your entire response should be in English, and in all lowercase letters. "
                     "No capital letters are allowed."),
    Kind("number_words",
         re.compile(r"Answer with (at least|less than) (\d+) words\."),
         lambda text, m: compare(count_words(text), m.group(1), int(m.group(2))),
         lambda rng: f"Answer with {rng.choice(['at least', 'less than'])} {rng.choice([10, 20, 30, 40, 60])} words."),
    Kind("number_sentences",
         re.compile(r"Your response should contain (at least|less than) (\d+) sentences\."),
         lambda text, m: compare(count_sentences(text), m.group(1), int(m.group(2))),
         lambda rng: f"Your response should contain {rng.choice(['at least', 'less than'])} "
                     f"{rng.choice([2, 3, 4, 5])} sentences."),
    Kind("existence",
         re.compile(r"Include keywords ([^.]+?) in the response\."),
         lambda text, m: includes_keywords(text, _keyword_list(m.group(1))),
         lambda rng: f"Include keywords {', '.join(rng.sample(KEYWORDS, rng.choice([1, 2])))} in the response."),
    Kind("forbidden_words",
         re.compile(r"Do not include keywords ([^.]+?) in the response\."),
         lambda text, m: excludes_keywords(text, _keyword_list(m.group(1))),
         lambda rng: f"Do not include keywords {', '.join(rng.sample(FORBIDDEN, rng.choice([1, 2])))} in the response."),
    Kind("end_checker",
         re.compile(r"Finish your response with this exact phrase (.+?)\. No other words should follow this phrase\."),
         lambda text, m: ends_with(text, m.group(1)),
         lambda rng: f"Finish your response with this exact phrase {rng.choice(ENDINGS)}. "
                     f"No other words should follow this phrase."),
    Kind("no_comma",
         re.compile(r"In your entire response, refrain from the use of any commas\."),
         lambda text, m: "," not in text,
         lambda rng: "In your entire response, refrain from the use of any commas."),
    Kind("number_bullet_lists",
         re.compile(r"Your answer must contain exactly (\d+) bullet points\. Use the markdown bullet points such as:"
                    r"\n\* This is point 1\.\n\* This is point 2"),
         lambda text, m: count_bullets(text) == int(m.group(1)),
         lambda rng: f"Your answer must contain exactly {rng.choice([2, 3, 4])} bullet points. Use the markdown "
                     f"bullet points such as:\n* This is point 1.\n* This is point 2"),
    Kind("json_format",
         re.compile(r"Entire output should be wrapped in JSON format\. You can use markdown ticks such as ```\."),
         lambda text, m: is_json(text),
         lambda rng: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```."),
)
KIND_NAMES = tuple(k.name for k in KINDS)
#: Kinds that cannot both hold, or that would make one another trivial: never drawn together.
EXCLUSIVE = [{"json_format", "number_bullet_lists", "english_lowercase", "end_checker"},
             {"json_format", "no_comma", "number_sentences"}, {"existence", "forbidden_words"}]


def instructions(prompt: str) -> list[tuple[Kind, re.Match]]:
    """The instructions a prompt carries, read back from its text, in the order they appear."""
    # patterns are case-sensitive: "Do not include keywords" is no "Include keywords"
    found = [(kind, match) for kind in KINDS for match in kind.pattern.finditer(prompt)]
    return sorted(found, key=lambda pair: pair[1].start())


def variants(response: str) -> list[str]:
    """IFEval's loose variants: the response without its first / last / both lines, each with and without ``*``."""
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return cut[:1] + [cut[0].replace("*", "")] + cut[1:] + [text.replace("*", "") for text in cut[1:]]


def followed(prompt: str, response: str, loose: bool = False) -> list[bool]:
    """Per instruction of ``prompt``: whether ``response`` follows it (IFEval strict or loose)."""
    candidates = variants(response) if loose else [response]
    return [any(text.strip() and kind.check(text, match) for text in candidates)
            for kind, match in instructions(prompt)]


def _fraction(prompt: str, response: str, loose: bool) -> float:
    results = followed(prompt, response, loose)
    if not results:
        raise ConfigError("an ifeval reward was asked to score a prompt that carries no instruction it can read "
                          f"back ({prompt[:80]!r}...): use it with the ifeval task's prompts")
    return sum(results) / len(results)


def ifeval_strict(prompts: list[str], responses: list[str]) -> list[float]:
    """Fraction of each prompt's instructions its response follows, checked strictly."""
    return [_fraction(p, r, loose=False) for p, r in zip(prompts, responses)]


def ifeval_loose(prompts: list[str], responses: list[str]) -> list[float]:
    """Fraction of each prompt's instructions its response follows, checked loosely (IFEval's loose)."""
    return [_fraction(p, r, loose=True) for p, r in zip(prompts, responses)]


# ----- the task ----------------------------------------------------------------------------------

_HH_TURN = re.compile(r"\n\n(?:Human|Assistant): ?")


def question_text(value: str) -> str:
    """The question of one source row: an HH dialogue's first human turn, an ARC query without
    its ``Question:`` label, or the text as it is."""
    if value.lstrip("\n").startswith("Human:"):
        parts = _HH_TURN.split("\n\n" + value.lstrip("\n"))
        value = parts[1] if len(parts) > 1 else ""
    value = value.strip()
    return value[len("Question:"):].strip() if value.startswith("Question:") else value


@dataclass
class IFEvalArgs:
    #: Questions: a hub data set (``OWNER/NAME`` or ``OWNER/NAME/DIR``) or a local file or directory.
    data: str = "Anthropic/hh-rlhf/helpful-base"
    split: str = "train"
    #: The column holding the question (an HH dialogue's first human turn is taken).
    field: str = "chosen"
    train_prompts: int = 512
    validation_prompts: int = 64
    test_prompts: int = 128
    split_seed: int = 0
    constraint_seed: int = 0
    #: Each prompt carries 1 to this many instructions.
    max_constraints: int = 2
    #: Questions longer than this many words are skipped (CPU budgets).
    max_question_words: int = 48
    template: str | None = "smollm2"
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        for key in ("train_prompts", "validation_prompts", "test_prompts", "max_question_words", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"task.args.{key} = {getattr(self, key)!r}: must be >= 1")
        if not 1 <= self.max_constraints <= 3:
            raise ConfigError(f"task.args.max_constraints = {self.max_constraints!r}: must be 1, 2 or 3")


def draw_instructions(rng: random.Random, count: int) -> list[str]:
    """``count`` instructions of distinct, compatible kinds."""
    chosen: list[Kind] = []
    for kind in rng.sample(KINDS, len(KINDS)):
        if len(chosen) == count:
            break
        if any(kind.name in group and c.name in group for group in EXCLUSIVE for c in chosen):
            continue
        chosen.append(kind)
    return [kind.draw(rng) for kind in chosen]


class IFEval(Task):
    name = "ifeval"
    description = "real questions with programmatically checked instructions; IFEval strict accuracy is the gold reward"
    version = "1"
    Args = IFEvalArgs

    def questions(self) -> list[str]:
        a = self.args
        raw = read_rows(a.data, split=a.split, skip_bad=True)
        out = []
        for row_no, row in raw.rows:
            value = row.get(a.field) if isinstance(row, dict) else None
            if not isinstance(value, str):
                raise ConfigError(f"{raw.source} row {row_no}: field {a.field!r} is "
                                  f"{'missing' if value is None else 'a ' + type(value).__name__ + ', not text'}; "
                                  f"set task.args.field to the column holding the question")
            question = question_text(value)
            if question and count_words(question) <= a.max_question_words and not instructions(question):
                out.append(question)
        return out

    def prompt(self, question: str) -> str:
        a = self.args
        seed = int.from_bytes(hashlib.sha256(f"{a.constraint_seed}\0{content_key(question)}".encode()).digest()[:8],
                              "big")
        rng = random.Random(seed)
        return question + "\n\n" + "\n".join(draw_instructions(rng, rng.randint(1, a.max_constraints)))

    def build(self) -> TaskData:
        a = self.args
        questions = split_order(self.questions(), content_key, a.split_seed)
        need = a.test_prompts + a.validation_prompts + 1
        if len(questions) < need:
            raise ConfigError(f"task.args.data = {a.data!r}: {len(questions)} distinct questions of at most "
                              f"task.args.max_question_words words; the splits need at least {need}")
        render = chat_renderer(a.template) or (lambda text: text)
        prompts = [render(self.prompt(q)) for q in questions]
        test = prompts[: a.test_prompts]
        validation = prompts[a.test_prompts: a.test_prompts + a.validation_prompts]
        train = prompts[a.test_prompts + a.validation_prompts:][: a.train_prompts]
        return TaskData(pretraining=None, demonstrations=[], train_prompts=train, validation_prompts=validation,
                        test_prompts=test, max_new_tokens=a.max_new_tokens)

    def gold_reward(self) -> RewardConfig:
        return RewardConfig(function=GOLD_REWARD)

    def judges(self) -> dict[str, Judge]:
        return {"loose": Judge(RewardConfig(function=LOOSE), True,
                               "fraction of instructions followed, IFEval's loose check")}


@hookimpl
def zoo_register_tasks(register):
    register(IFEval)


@hookimpl
def zoo_register_rewards(register):
    register(RewardFunction(GOLD_REWARD, ifeval_strict,
                            "fraction of the prompt's IFEval-style instructions the response follows (strict)"))
    register(RewardFunction(LOOSE, ifeval_loose,
                            "fraction of the prompt's IFEval-style instructions the response follows (loose)"))
