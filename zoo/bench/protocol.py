"""The declared protocol of a benchmark: what is claimed, how rows are selected and budgeted, what
counts as a collapse, and how the verdicts are re-tested (the canary, the perturbation run).

These sections of the bench config (:class:`zoo.bench.config.BenchConfig`) are what a verdict
rests on; results.json records a hash of them (``protocol_hash``), and a changed declaration
keeps the earlier one's verdicts in results.md's protocol history.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class BudgetConfig:
    """Which training quantity every trained contender gets equally (:mod:`zoo.bench.budget`)."""

    #: ``flops`` or ``samples`` (generated while training): steps are fitted per contender;
    #: ``steps``: every contender trains ``alignment.train.max_steps`` steps.
    matched: Literal["flops", "samples", "steps"] = "flops"
    #: The matched amount per run (FLOPs or samples); None: the median contender's cost of
    #: ``alignment.train.max_steps`` steps.
    target: float | None = None
    #: Steps of the calibration run that measures a contender's cost per step.
    calibration_steps: int = 2
    #: No contender trains more steps than this, whatever the target asks.
    max_steps: int = 2000


@dataclass
class CanaryConfig:
    """What ``zoo bench CONFIG --canary`` rebuilds to show a code change moves no number (:mod:`zoo.bench.canary`)."""

    #: The last shared stage of the first seed's pipeline it rebuilds: task, init, pretrain, sft,
    #: preferences (the SFT model's samples and their labels) or reward_model (the proxy trained on them).
    until: Literal["task", "init", "pretrain", "sft", "preferences", "reward_model"] = "sft"


@dataclass
class PerturbationConfig:
    """``zoo bench CONFIG --perturb``: the same protocol on shifted seeds (:mod:`zoo.bench.perturb`)."""

    #: Added to every reported and tuning seed.
    seed_offset: int = 100


@dataclass
class FailureConfig:
    """When a run counts as collapsed (:func:`zoo.bench.stats.is_failure`): reported as a failure
    rate, left out of the means and the tests rather than averaged in."""

    #: KL(π‖π_SFT) on the test prompts above this many nats per response is a collapse.
    max_kl: float = 20.0
    #: Mean gold reward more than this many standard deviations (of the SFT model's per-sample
    #: gold reward, same seed) below the SFT model's is a collapse.
    max_gold_drop_sd: float = 1.0


@dataclass
class Claim:
    """A published result the run can test: row ``better`` beats row ``worse`` on ``outcome``.

    ``outcome: gold`` (the default): ``better`` has a higher mean gold reward (paired t-test on
    seeds). ``outcome: collapse``: ``better`` collapses *less* often than ``worse`` (McNemar's
    exact test on the seeds where exactly one of them collapsed), the shape of an
    over-optimisation claim. results.md's findings section says, for each claim, whether the test
    reproduces it (significant in the claimed direction), contradicts it (significant the other
    way) or cannot tell (not significant).
    """

    #: The claim in words, with its source (e.g. "RRHF improves on SFT (Yuan et al. 2023)").
    text: str = ""
    better: str = ""
    worse: str = ""
    outcome: Literal["gold", "collapse"] = "gold"


@dataclass
class DeclaredRun:
    """An earlier declaration of this config's protocol and what it gave, kept in results.md's protocol
    history (for runs before results.json recorded its protocol; later ones are carried over from
    the previous results.json automatically)."""

    #: When it was declared and run, and the commit of its result (e.g. "2026-12-02, results at 81afc22").
    when: str = ""
    seeds: list[int] = field(default_factory=list)
    #: The claims as then declared, each with the verdict that run gave.
    claims: list[dict[str, str]] = field(default_factory=list)
    #: What changed afterwards, and why.
    change: str = ""


@dataclass
class SelectionConfig:
    """How a selected sweep picks its setting: on the validation prompts of the tuning seeds."""

    #: ``proxy``: the highest mean proxy reward-model score (what a user has), among the settings
    #: whose KL(π‖π_SFT) stays within ``failure.max_kl``. ``gold``: the highest mean gold reward
    #: among settings that do not collapse, an oracle no user has (an ablation, labelled as such).
    criterion: Literal["proxy", "gold"] = "proxy"
