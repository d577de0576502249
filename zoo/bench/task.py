"""The benchmark task contract.

A task is what ``zoo bench`` aligns models *for*: it supplies the data every stage trains on, a
gold reward that stands in for the humans who label preferences (and that every model is judged
by), and knowledge probes that measure what alignment costs. Tasks are plugins, registered
through ``zoo_register_tasks``::

    @hookimpl
    def zoo_register_tasks(register):
        register(MyTask)

A task subclass declares ``name``, a hyperparameter dataclass ``Args`` (validated like every
other config section: unknown keys are errors with a suggestion) and ``version`` (part of every
stage fingerprint: bump it when the generated data or the gold reward change), and implements
:meth:`Task.build`, :meth:`Task.tokenizer` and :meth:`Task.gold_reward`; :meth:`Task.judges` optionally
names further scorers reported beside the gold reward.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from zoo.config import RewardConfig
from zoo.errors import ConfigError

@dataclass
class TaskArgs:
    """Base class of task hyperparameter dataclasses (a task without arguments uses it as is)."""


@dataclass(frozen=True)
class Judge:
    """A scorer reported beside the gold reward (:meth:`Task.judges`); never optimised, never read
    by hyperparameter selection.

    Attributes:
        reward: the reward source that scores each (prompt, response).
        same_property: True for an independent judge of what the gold reward measures, whose
            difference from the baseline should share the sign of the gold reward's (the report
            names every significant row where it does not); False for a measure reported for
            context only, such as a degeneracy score.
        description: one line for the report.
    """

    reward: RewardConfig
    same_property: bool = True
    description: str = ""


@dataclass
class TaskData:
    """The data a task supplies to the benchmark stages.

    Attributes:
        pretraining: ``{"text": ...}`` rows the from-scratch model is pretrained on (loss on the
            whole text), or None when the task runs on an already pretrained model.
        demonstrations: ``{"prompt", "completion"}`` rows for supervised fine-tuning.
        train_prompts: prompts the SFT model is sampled on to build preference data, and that
            online algorithms train on.
        validation_prompts: held-out prompts that hyperparameter selection reads (a selected
            sweep keeps the setting with the highest gold reward on them); never reported.
        test_prompts: held-out prompts every reported number is measured on (also the source of
            the held-out preference pairs). The three prompt lists must be disjoint: the harness
            refuses a task whose splits share a prompt.
        probes: knowledge probes in MMLU's item format (``subject``, ``question``, ``choices``
            (4 strings), ``answer`` (index)), scored by the MMLU code path; may be empty.
        probe_fewshot: MMLU-format items used as few-shot examples for the probes.
        heldout_probes: items about what the task's data teaches that its data never states
            verbatim (paraphrased or recombined facts): the alignment-tax probe; may be empty.
            Either MMLU-format items, or cloze items (``context``, ``choices``, ``answer``
            (index)) scored as lm-evaluation-harness scores a multiple-choice task: the choice
            whose continuation ``" " + choice`` of the context is most likely (``acc``).
        max_new_tokens: the response length the task's samples need.
        preference_pairs: human-labelled pairs of the train prompts (``prompt``, ``chosen``,
            ``rejected``), or None. When given, the preference stage uses them as they are (the
            proxy reward model and the offline algorithms train on them) instead of sampling the
            SFT model and labelling its samples with the gold reward.
        heldout_pairs: human-labelled pairs of the test prompts, for held-out preference accuracy
            (with ``preference_pairs``; None otherwise).
    """

    pretraining: list[dict[str, Any]] | None
    demonstrations: list[dict[str, Any]]
    train_prompts: list[str]
    validation_prompts: list[str]
    test_prompts: list[str]
    probes: list[dict[str, Any]] = field(default_factory=list)
    probe_fewshot: list[dict[str, Any]] = field(default_factory=list)
    heldout_probes: list[dict[str, Any]] = field(default_factory=list)
    max_new_tokens: int = 32
    preference_pairs: list[dict[str, Any]] | None = None
    heldout_pairs: list[dict[str, Any]] | None = None


class Task:
    """Base class of benchmark tasks. See the module docstring."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Args: ClassVar[type] = TaskArgs

    def __init__(self, args: Any = None):
        self.args = args if args is not None else self.Args()

    @classmethod
    def parse_args(cls, values: dict[str, Any] | None) -> Any:
        """Build ``Args`` from a config mapping, naming bad keys as ``task.args.KEY``."""
        from zoo.config import build_dataclass

        return build_dataclass(cls.Args, dict(values or {}), prefix="task.args")

    def args_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.args)

    def build(self) -> TaskData:
        """Generate (or read) the task's data; must be deterministic in ``self.args``."""
        raise TypeError(f"task {self.name!r} does not implement build()")

    def tokenizer(self) -> Any:
        """The tokenizer of a from-scratch model, or None to use the configured model's own."""
        return None

    def gold_reward(self) -> RewardConfig | None:
        """The gold reward source: a registered reward function or a reward model path / hub id.

        None: the task has no gold reward, and every model is judged by the pipeline's reward
        model (trained on the task's ``preference_pairs``), the same one the online contenders
        optimise; reports then name it the judge.
        """
        raise TypeError(f"task {self.name!r} does not implement gold_reward()")

    def judges(self) -> dict[str, Judge]:
        """Scorers reported beside the gold reward, by name (none by default). A second judge of the
        same property and a degeneracy measure make a win that only games the gold reward's
        blind spots show as a gap between them rather than as a win."""
        return {}


SPLITS = ("train", "validation", "test")


def check_splits(task_name: str, data: TaskData) -> None:
    """Refuse prompt splits that overlap or a held-out split that is empty."""
    splits = {"train": data.train_prompts, "validation": data.validation_prompts, "test": data.test_prompts}
    for name in ("validation", "test"):
        if not splits[name]:
            raise ConfigError(f"task {task_name!r} supplies no {name} prompts; the benchmark needs train, validation "
                              f"and test prompts")
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            shared = set(splits[first]) & set(splits[second])
            if shared:
                example = sorted(shared)[0]
                raise ConfigError(f"task {task_name!r}: {len(shared)} prompt(s) are in both the {first} and the "
                                  f"{second} split (e.g. {example!r}); the splits must be disjoint (check the "
                                  f"task's arguments)")
