"""The contract check :func:`assert_algorithm_conforms`.

What :func:`assert_algorithm_conforms` checks, for every algorithm:

* the declarations: ``name``, ``data_shape``, ``output``, the capability flags, ``Args`` a
  :class:`zoo.Hyperparameters` dataclass whose defaults validate and survive a round trip
  through a config mapping, an unknown key rejected with a suggestion, and every mapping in
  ``bad_args`` rejected with a :class:`zoo.ConfigError` naming ``algorithm_args.KEY``;
* ``state_dict()`` / ``load_state_dict()`` round-trip.

For offline algorithms (``generates_online = False``), additionally, on the built-in tiny model
and a fake batch built through the real tokenizer and collator:

* collate → forward → loss (through :class:`zoo.module.AlignmentModule`, the training path,
  with a frozen reference when ``needs_reference``): ``[B]`` finite losses, metrics of shape
  ``[B]`` or scalars, all finite;
* backward: finite gradients reaching the policy's input embeddings (and the algorithm's own
  modules), none reaching the reference;
* an optimiser step changes the policy, leaves the reference alone, and the next loss is finite;
* with hand-built :class:`zoo.SequenceLogProbs` (``policy.sum`` holds the scores for
  ``output = "scores"``): the loss moves the way its data shape demands — raising the chosen
  response lowers a pairwise loss and raising the rejected one raises it; raising the
  best-scored response lowers a ranked loss, raising the worst-scored one raises it, and padding
  slots do not change it; raising an SFT response lowers an SFT loss; raising a desirable
  completion lowers an unpaired loss and raising an undesirable one raises it;
* cached reference values (``zoo.forward.cached_logprobs``: sequence sums only, no per-token
  values) give the same losses as the reference's full ``SequenceLogProbs``, and the loss does
  not modify its inputs.

For online algorithms (``generates_online = True``) the data-dependent direction of the loss is
defined by the experience the algorithm makes, so the kit instead runs ``make_experience`` on a
batch of prompts (with the shared sampler, and the ``reward`` you pass or a simple default) and
checks every minibatch's loss, gradients and optimiser step as above. Algorithms with
``output = "scores"`` run on the tiny model with a scalar head, as ``zoo train`` loads them, and
their ``policy.sum`` holds the scores in the direction checks.

Over 300 lines because it is the whole contract check in one place, one private function per
part of the contract, so that a plugin author reads what is checked in one file.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoo.algorithm import DATA_SHAPES, Algorithm, Hyperparameters
from zoo.batch import Batch, LossOutput, SequenceLogProbs
from zoo.errors import ConfigError
from zoo.model_output import OUTPUT_KINDS, output_kind
from zoo.testing.fakes import fake_batch, with_sums

#: Per-token log-prob of every response in the hand-built log-probs, and how much a check raises it.
BASE_TOKEN_LOGP = -2.0
NUDGE_PER_TOKEN = 1.0


class ConformanceError(AssertionError):
    """An algorithm breaks the contract; the message says which check failed and why."""


@dataclass
class ConformanceReport:
    """What :func:`assert_algorithm_conforms` checked (``checks``) and left out (``skipped``)."""

    algorithm: str
    checks: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    losses: Tensor | None = None


def _fail(name: str, check: str, message: str) -> ConformanceError:
    return ConformanceError(f"algorithm {name!r}, {check}: {message}")


def _resolve(name_or_class: str | type[Algorithm]) -> type[Algorithm]:
    if isinstance(name_or_class, str):
        from zoo.registry import get_registry

        return get_registry().algorithm(name_or_class)
    return name_or_class


def _check_declarations(cls: type, report: ConformanceReport) -> None:
    name = getattr(cls, "name", None)
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise ConformanceError(f"{cls!r} is not a subclass of zoo.Algorithm")
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ConformanceError(f"{cls.__name__}.name must be a non-empty string without spaces, got {name!r}")
    fail = lambda message: _fail(name, "declarations", message)  # noqa: E731
    if cls.data_shape not in DATA_SHAPES:
        raise fail(f"data_shape = {cls.data_shape!r}; expected one of {', '.join(DATA_SHAPES)}")
    if cls.output not in OUTPUT_KINDS:
        raise fail(f"output = {cls.output!r}; expected {' or '.join(map(repr, OUTPUT_KINDS))}")
    for flag in ("needs_reference", "needs_reward", "generates_online", "wants_hidden_states"):
        if not isinstance(getattr(cls, flag), bool):
            raise fail(f"{flag} must be True or False, got {getattr(cls, flag)!r}")
    if cls.loss is Algorithm.loss:
        raise fail("loss() is not implemented")
    if cls.generates_online and cls.make_experience is Algorithm.make_experience:
        raise fail("generates_online is True but make_experience() is not implemented")
    if cls.data_shape == "prompt" and not cls.generates_online:
        raise fail("prompt-only data has no responses to score; an offline algorithm needs sft, pairwise, "
                   "ranked or unpaired data (or set generates_online and implement make_experience)")
    if not (isinstance(cls.Args, type) and issubclass(cls.Args, Hyperparameters) and dataclasses.is_dataclass(cls.Args)):
        raise fail("Args must be a @dataclass subclass of zoo.Hyperparameters")
    report.checks.append("declarations")


def _check_hyperparameters(cls: type[Algorithm], bad_args: Sequence[Mapping[str, Any]] | None,
                           report: ConformanceReport) -> None:
    fail = lambda message: _fail(cls.name, "hyperparameters", message)  # noqa: E731
    try:
        defaults = cls.parse_args({})
    except Exception as exc:
        raise fail(f"the default Args do not validate: {exc}") from exc
    as_config = dataclasses.asdict(defaults)
    try:
        round_trip = cls.parse_args(as_config)
    except Exception as exc:
        raise fail(f"the defaults written as a config mapping {as_config!r} are rejected: {exc}") from exc
    if round_trip != defaults:
        raise fail(f"the defaults do not survive a round trip through a config: {defaults!r} != {round_trip!r}")

    fields = [f.name for f in dataclasses.fields(cls.Args) if f.init]
    typo = fields[0] + "x" if fields else "unknown_key"
    try:
        cls.parse_args({typo: 1.0})
    except ConfigError as exc:
        if f"algorithm_args.{typo}" not in str(exc) or (fields and "did you mean" not in str(exc)):
            raise fail(f"the error for the unknown key {typo!r} should name 'algorithm_args.{typo}' and "
                       f"suggest {fields[0] if fields else 'a known key'!r}; it says: {exc}") from None
    else:
        raise fail(f"the unknown key {typo!r} was accepted")

    for bad in bad_args or ():
        try:
            cls.parse_args(dict(bad))
        except ConfigError as exc:
            if not any(f"algorithm_args.{key}" in str(exc) for key in bad):
                raise fail(f"the error for {dict(bad)!r} does not name the key "
                           f"(expected 'algorithm_args.KEY' in the message): {exc}") from None
        except Exception as exc:
            raise fail(f"{dict(bad)!r} raised {type(exc).__name__} instead of zoo.ConfigError: {exc}") from exc
        else:
            raise fail(f"{dict(bad)!r} was accepted; Args.validate() should reject it with self.require(...)")
    report.checks.append("hyperparameters")


def _check_output(name: str, out: Any, num_examples: int, where: str) -> None:
    fail = lambda message: _fail(name, where, message)  # noqa: E731
    if not isinstance(out, LossOutput):
        raise fail(f"loss() returned {type(out).__name__}, expected zoo.LossOutput")
    if not isinstance(out.losses, Tensor) or tuple(out.losses.shape) != (num_examples,):
        shape = tuple(out.losses.shape) if isinstance(out.losses, Tensor) else type(out.losses).__name__
        raise fail(f"losses must be unreduced, of shape [B] = ({num_examples},); got {shape}")
    if not torch.isfinite(out.losses).all():
        raise fail(f"losses are not finite: {out.losses.tolist()}")
    for key, value in out.metrics.items():
        if not isinstance(value, Tensor) or (value.ndim and tuple(value.shape) != (num_examples,)):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise fail(f"metric {key!r} must be a [B] tensor or a scalar tensor; got {shape}")
        if not torch.isfinite(value.float()).all():
            raise fail(f"metric {key!r} is not finite: {value.tolist()}")


def _check_training_step(module: Any, batch: Batch, report: ConformanceReport, label: str) -> Tensor:
    """loss → backward → optimiser step on ``batch``; returns the per-example losses."""
    name = module.algorithm.name
    policy, reference = module.policy, module.reference
    out = module.compute_loss(batch)
    _check_output(name, out, batch.num_examples, f"{label} loss")
    if not out.losses.requires_grad:
        raise _fail(name, f"{label} backward", "the losses do not depend on the policy (no gradient)")
    module.zero_grad(set_to_none=True)
    out.losses.mean().backward()
    for param_name, parameter in module.named_parameters():
        if parameter.grad is not None and not torch.isfinite(parameter.grad).all():
            raise _fail(name, f"{label} backward", f"the gradient of {param_name} is not finite")
    embedding_grad = policy.get_input_embeddings().weight.grad
    if embedding_grad is None or not embedding_grad.abs().sum() > 0:
        raise _fail(name, f"{label} backward", "no gradient reaches the policy's input embeddings")
    for module_name, extra in module.extra.items():
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in extra.parameters()):
            raise _fail(name, f"{label} backward", f"no gradient reaches the algorithm's module {module_name!r}")
    if reference is not None and any(p.grad is not None for p in reference.parameters()):
        raise _fail(name, f"{label} backward", "a gradient reached the frozen reference model")

    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    reference_before = None if reference is None else [p.detach().clone() for p in reference.parameters()]
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    optimizer.step()
    if all(torch.equal(before[k], v) for k, v in policy.state_dict().items()):
        raise _fail(name, f"{label} optimiser step", "the policy did not change")
    if reference_before is not None and not all(torch.equal(a, b) for a, b in zip(reference_before, reference.parameters())):
        raise _fail(name, f"{label} optimiser step", "the reference model changed")
    with torch.no_grad():
        after = module.compute_loss(batch)
    _check_output(name, after, batch.num_examples, f"{label} loss after an optimiser step")
    report.checks += [f"{label} loss", f"{label} backward", f"{label} optimiser step"]
    return out.losses.detach()


def _responsiveness_targets(cls: type[Algorithm], batch: Batch) -> list[tuple[str, Tensor, int]]:
    """(description, [B, k] bool slots to raise, expected sign of the change in loss)."""
    b, k = batch.valid.shape
    slots = torch.zeros(b, k, dtype=torch.bool)
    if cls.data_shape == "sft":
        return [("raising the response's log-prob", slots.index_fill(1, torch.tensor([0]), True), -1)]
    if cls.data_shape == "pairwise":
        chosen, rejected = slots.clone(), slots.clone()
        chosen[:, 0], rejected[:, 1] = True, True
        return [("raising the chosen response's log-prob", chosen, -1),
                ("raising the rejected response's log-prob", rejected, +1)]
    if cls.data_shape == "unpaired":  # slot 1, the mismatched pair, sets a reference point: no direction
        desirable, undesirable = slots.clone(), slots.clone()
        desirable[:, 0], undesirable[:, 0] = batch.scores[:, 0] > 0, batch.scores[:, 0] <= 0
        return [(description, target, sign) for description, target, sign in (
            ("raising a desirable completion's log-prob", desirable, -1),
            ("raising an undesirable completion's log-prob", undesirable, +1)) if target.any()]
    if batch.scores is None:
        raise ConformanceError("a ranked batch without scores")
    best = batch.scores.masked_fill(~batch.valid, -math.inf).argmax(-1)
    worst = batch.scores.masked_fill(~batch.valid, math.inf).argmin(-1)
    rows = torch.arange(b)
    best_slots, worst_slots = slots.clone(), slots.clone()
    best_slots[rows, best], worst_slots[rows, worst] = True, True
    return [("raising the best-scored response's log-prob", best_slots, -1),
            ("raising the worst-scored response's log-prob", worst_slots, +1)]


def _check_responsiveness(algorithm: Algorithm, template: SequenceLogProbs, batch: Batch,
                          report: ConformanceReport) -> None:
    """Feed hand-built log-probs and check the loss moves the way the data shape demands."""
    cls, name = type(algorithm), algorithm.name
    what = output_kind(cls).value
    lengths = template.lengths.clamp(min=1).float()
    base = BASE_TOKEN_LOGP * lengths
    reference = with_sums(template, base) if cls.needs_reference else None
    policy = with_sums(template, base)
    inputs = [policy.sum, policy.token_logps] + ([] if reference is None else [reference.sum])
    snapshot = [t.clone() for t in inputs]
    with torch.no_grad():
        base_out = algorithm.loss(policy, reference, batch)
    _check_output(name, base_out, batch.num_examples, "loss of hand-built log-probs")
    if not all(torch.equal(a, b) for a, b in zip(inputs, snapshot)):
        raise _fail(name, "purity", "loss() modified its input tensors")
    report.checks.append("purity")

    if reference is not None:
        from zoo.forward import cached_logprobs

        cached_reference = cached_logprobs(reference.sum.clone(), batch)
        try:
            with torch.no_grad():
                cached = algorithm.loss(policy, cached_reference, batch)
        except Exception as exc:
            raise _fail(name, "cached reference", f"cached reference values (sequence sums only, token_logps None) "
                                                  f"made loss() raise {type(exc).__name__}: {exc}; an offline loss "
                                                  f"should read reference.sum / .mean / .lengths") from exc
        if not torch.allclose(cached.losses, base_out.losses, atol=1e-6):
            raise _fail(name, "cached reference",
                        f"cached reference values give losses {cached.losses.tolist()}, the reference's full "
                        f"SequenceLogProbs {base_out.losses.tolist()}")
        report.checks.append("cached reference")

    for description, slots, sign in _responsiveness_targets(cls, batch):
        nudged = with_sums(template, base + NUDGE_PER_TOKEN * lengths * slots)
        with torch.no_grad():
            out = algorithm.loss(nudged, reference, batch)
        change = out.losses - base_out.losses
        description = description.replace("log-prob", what)
        wrong_way = (change * sign < -1e-6).any() or not (change.mean() * sign > 1e-6)
        if wrong_way:
            expected = "lower" if sign < 0 else "raise"
            article = "an" if cls.data_shape[0] in "aeiou" else "a"
            raise _fail(name, "responsiveness",
                        f"{description} should {expected} {article} {cls.data_shape} loss; per-example losses went from "
                        f"{base_out.losses.tolist()} to {out.losses.tolist()}")
        report.checks.append(f"responsiveness: {description}")

    padding = ~batch.valid
    if padding.any():
        shifted = with_sums(template, base + 1.5 * lengths * padding)
        with torch.no_grad():
            out = algorithm.loss(shifted, reference, batch)
        if not torch.allclose(out.losses, base_out.losses, atol=1e-6):
            raise _fail(name, "padding slots", f"changing the {what}s of padding slots (batch.valid False) changed "
                                               f"the losses from {base_out.losses.tolist()} to {out.losses.tolist()}")
        report.checks.append("padding slots ignored")


def _distinct_words(prompts: list[str], responses: list[str]) -> list[float]:
    """The kit's default reward: the number of distinct words in each response."""
    return [float(len(set(response.split()))) for response in responses]


def _reward_source(reward: Any) -> Any:
    """A :class:`zoo.rewards.sources.RewardSource` from a registered name, a RewardFunction, a function or a source."""
    from zoo.config import RewardConfig
    from zoo.rewards.loading import load_reward_source
    from zoo.rewards.sources import FunctionReward, RewardFunction, RewardSource

    if isinstance(reward, RewardSource):
        return reward
    if isinstance(reward, str):
        return load_reward_source(RewardConfig(function=reward))
    if isinstance(reward, RewardFunction):
        return FunctionReward(reward)
    if callable(reward):
        return FunctionReward(RewardFunction(getattr(reward, "__name__", "reward"), reward))
    raise TypeError(f"reward must be a registered reward function's name, a zoo.RewardFunction, a function "
                    f"fn(prompts, responses) -> list[float] or a RewardSource; got {reward!r}")


def _build_module(algorithm: Algorithm, reward: Any) -> Any:
    """The training loop's module with the tiny model, its policy and reference loaded as
    ``zoo train`` loads them (:func:`zoo.run.load_policy`, :func:`zoo.reference.training_reference`)."""
    from zoo.config import ModelConfig, RunConfig
    from zoo.models import load_tokenizer
    from zoo.module import AlignmentModule
    from zoo.reference import training_reference
    from zoo.run import load_policy

    config = RunConfig(model=ModelConfig(name="tiny"))
    kind = output_kind(algorithm)
    tokenizer = load_tokenizer(config.model)
    policy = load_policy(config, kind, tokenizer)
    reference = training_reference(config, policy, tokenizer) if algorithm.needs_reference else None
    source = None if reward is None else _reward_source(reward)
    return AlignmentModule(policy, algorithm, config.train, reference=reference, reward=source, tokenizer=tokenizer,
                           output=kind), tokenizer


def assert_algorithm_conforms(name_or_class: str | type[Algorithm], *,
                              bad_args: Sequence[Mapping[str, Any]] | None = None,
                              args: Mapping[str, Any] | None = None, batch_size: int = 2, k: int | None = None,
                              reward: Any = None) -> ConformanceReport:
    """Check that an algorithm honours the contract of :class:`zoo.Algorithm` (see the module docstring).

    Args:
        name_or_class: a registered algorithm name (checks the installed plugin) or the class itself.
        bad_args: hyperparameter mappings that ``Args`` must reject, e.g. ``[{"beta": 0.0}]``.
        args: hyperparameters to test with (default: the defaults).
        batch_size, k: size of the fake batch (``k`` for ranked data; default 3).
        reward: for algorithms that declare ``needs_reward``: a registered reward function's name,
            a :class:`zoo.RewardFunction`, a function ``fn(prompts, responses) -> list[float]`` or a
            :class:`zoo.rewards.sources.RewardSource`. Default: the number of distinct words in each response.
    Returns:
        a :class:`ConformanceReport` listing the checks that ran. Raises :class:`ConformanceError`.
    """
    cls = _resolve(name_or_class)
    report = ConformanceReport(getattr(cls, "name", repr(cls)))
    _check_declarations(cls, report)
    _check_hyperparameters(cls, bad_args, report)
    algorithm = cls(cls.parse_args(dict(args or {})))
    state = algorithm.state_dict()
    if not isinstance(state, dict):
        raise _fail(cls.name, "state", f"state_dict() must return a dict, got {type(state).__name__}")
    algorithm.load_state_dict(copy.deepcopy(state))
    report.checks.append("state round trip")

    if cls.needs_reward and reward is None:
        reward = _distinct_words
    module, tokenizer = _build_module(algorithm, reward if cls.needs_reward else None)

    if cls.generates_online:
        prompts = fake_batch(cls.data_shape, tokenizer, batch_size, k)
        try:
            context = module.experience_context()
        except ImportError as exc:
            raise _fail(cls.name, "setup", f"online algorithms need the shared sampler ({exc})") from exc
        with torch.no_grad():
            experience = algorithm.make_experience(context, prompts)
        if not isinstance(experience, Batch):
            raise _fail(cls.name, "make_experience", f"returned {type(experience).__name__}, expected zoo.Batch")
        report.checks.append("make_experience")
        steps = 0
        for steps, minibatch in enumerate(algorithm.minibatches(experience), start=1):
            report.losses = _check_training_step(module, minibatch, report, f"minibatch {steps}")
        if steps == 0:
            raise _fail(cls.name, "minibatches", "yielded no minibatch")
        report.skipped["responsiveness"] = ("an online algorithm's loss depends on the experience it makes, so its "
                                            "direction is not checked; test it with hand-made experience")
        return report

    batch = fake_batch(cls.data_shape, tokenizer, batch_size, k)
    with torch.no_grad():
        template = module.outputs(module.policy, batch)
    _check_responsiveness(algorithm, template, batch, report)
    report.losses = _check_training_step(module, batch, report, "training step")
    return report
