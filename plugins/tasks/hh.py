"""``hh``: align a pretrained hub model on Anthropic HH prompts, judged by a gold reward model.

Gao et al.'s synthetic set-up (arXiv:2210.10760) on real models: a large public reward model
stands in for the human raters. It labels preference pairs of the SFT model's samples (the
benchmark's preference stage), a smaller proxy reward model is learnt from those labels, and
every contender is scored by the gold model. Prompts and SFT demonstrations (the preferred
response of each HH pair) come from ``data``: the Hub's ``Anthropic/hh-rlhf``, or a local
file or directory in the same format.

``gold_reward_model`` is a local directory holding a one-label
``AutoModelForSequenceClassification`` (and its tokenizer), e.g.::

    huggingface-cli download OpenAssistant/reward-model-deberta-v3-large-v2 --local-dir models/gold-rm

There is no pretraining corpus and there are no probes: knowledge is measured by the ``mmlu``
and ``arc_*`` evaluation suites the bench config lists.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo import ConfigError, RewardConfig, hookimpl
from zoo.bench import Task, TaskData
from zoo.data import normalise, read_rows


@dataclass
class HHArgs:
    #: A hub data set of HH-style pairs, or a local file or directory.
    data: str = "Anthropic/hh-rlhf"
    train_split: str = "train"
    eval_split: str = "test"
    demonstrations: int = 4000
    train_prompts: int = 2000
    #: Prompts held out of the train split for hyperparameter selection.
    validation_prompts: int = 128
    #: Prompts of ``eval_split`` every reported number is measured on.
    test_prompts: int = 256
    max_new_tokens: int = 128
    #: Directory of the gold reward model (see the module docstring). Required.
    gold_reward_model: str = ""

    def __post_init__(self) -> None:
        if not self.gold_reward_model:
            raise ConfigError("task.args.gold_reward_model is required: a directory holding the gold reward model "
                              "(e.g. huggingface-cli download OpenAssistant/reward-model-deberta-v3-large-v2 "
                              "--local-dir models/gold-rm)")
        for key in ("demonstrations", "train_prompts", "validation_prompts", "test_prompts", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"task.args.{key} = {getattr(self, key)!r}: must be >= 1")


def read_pairs(spec: str, split: str, limit: int) -> list[tuple[str, str]]:
    """(prompt, preferred response) of the first ``limit`` usable rows, distinct prompts only."""
    raw = read_rows(spec, split=split)
    out: dict[str, str] = {}
    for row_no, row in raw.rows:
        if len(out) >= limit:
            break
        example = normalise(row, row_no, raw.source, "pairwise")
        out.setdefault(example.prompt, example.responses[0])
    return list(out.items())


class AnthropicHH(Task):
    name = "hh"
    description = "Anthropic HH prompts on a pretrained hub model; a gold reward model labels and judges"
    version = "1"
    Args = HHArgs

    def build(self) -> TaskData:
        a = self.args
        train = read_pairs(a.data, a.train_split, a.demonstrations + a.train_prompts + a.validation_prompts)
        seen = {p for p, _ in train}
        # The splits must be disjoint: a test prompt that also occurs in the train split is skipped.
        evaluation = [(p, c) for p, c in read_pairs(a.data, a.eval_split, a.test_prompts + len(seen))
                      if p not in seen][: a.test_prompts]
        validation = [p for p, _ in train[a.demonstrations: a.demonstrations + a.validation_prompts]]
        prompts = [p for p, _ in train[a.demonstrations + a.validation_prompts:]]
        if not prompts:
            raise ConfigError(f"task.args.data = {a.data!r} ({a.train_split!r}) has {len(train)} usable rows: "
                              f"task.args.demonstrations + validation_prompts = "
                              f"{a.demonstrations + a.validation_prompts} leave none for train_prompts")
        return TaskData(
            pretraining=None,
            demonstrations=[{"prompt": p, "completion": c} for p, c in train[: a.demonstrations]],
            train_prompts=prompts,
            validation_prompts=validation,
            test_prompts=[p for p, _ in evaluation],
            max_new_tokens=a.max_new_tokens,
        )

    def gold_reward(self) -> RewardConfig:
        return RewardConfig(model=self.args.gold_reward_model)


@hookimpl
def zoo_register_tasks(register):
    register(AnthropicHH)
