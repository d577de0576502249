"""Running suites on a model and writing ``results.json`` and ``samples_<suite>.jsonl``."""
from __future__ import annotations

import datetime
import platform
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    from torch import nn

from zoo.errors import ConfigError
from zoo.eval.results import SuiteResult, write_results, write_samples
from zoo.eval.suite import EvalContext, Suite
from zoo.progress import Progress

#: ``(suite, total units of work) -> callback(units done)``, for progress bars.
ProgressFactory = Callable[[Suite, int], Callable[[int], None] | None]


def make_suites(suites: Sequence[str | Suite], options: Mapping[str, Mapping[str, Any]] | None = None) -> list[Suite]:
    """Suite instances from registered names (or instances, kept as they are)."""
    from zoo.registry import get_registry

    options = dict(options or {})
    names = [s if isinstance(s, str) else s.name for s in suites]
    if not names:
        raise ConfigError("no suites selected; available: " + ", ".join(get_registry().names("suites")))
    if len(set(names)) != len(names):
        raise ConfigError(f"a suite is selected twice: {', '.join(names)}")
    for name in options:
        if name not in names:
            raise ConfigError(f"options are given for suite {name!r}, which is not selected ({', '.join(names)})")
    out = []
    for suite in suites:
        if isinstance(suite, Suite):
            out.append(suite)
            continue
        cls = get_registry().get("suites", suite)
        out.append(cls(options.get(suite)))
    return out


def check_settings(suites: Sequence[Suite], *, num_fewshot: int | None, limit: int | None, batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be >= 1")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be >= 1")
    if num_fewshot is not None:
        if num_fewshot < 0:
            raise ConfigError(f"--num-fewshot {num_fewshot}: must be >= 0")
        if num_fewshot > 0 and all(s.default_num_fewshot is None for s in suites):
            raise ConfigError(f"--num-fewshot {num_fewshot}: none of the selected suites "
                              f"({', '.join(s.name for s in suites)}) takes few-shot examples")


def run_suites(model: nn.Module | None, tokenizer, suites: Sequence[str | Suite], *, data_dir: str | Path | None = None,
               num_fewshot: int | None = None, limit: int | None = None, batch_size: int = 16, reward: Any = None,
               reference: nn.Module | None = None, options: Mapping[str, Mapping[str, Any]] | None = None,
               seed: int = 0, share_prefix: bool = True, layout: str = "blocks",
               progress: ProgressFactory | None = None) -> dict[str, SuiteResult]:
    """Load (when not loaded yet) and run each suite; suite name → :class:`SuiteResult`.

    ``progress`` makes each suite's progress callback; by default each suite shows a
    :class:`zoo.progress.Progress`.
    """
    instances = make_suites(suites, options)
    check_settings(instances, num_fewshot=num_fewshot, limit=limit, batch_size=batch_size)
    for suite in instances:  # every data problem surfaces before the first model call
        if not suite.loaded:
            suite.load(data_dir, limit)
            suite.loaded = True
    results: dict[str, SuiteResult] = {}
    for suite in instances:
        with ExitStack() as stack:
            if progress is not None:
                report = progress(suite, suite.size())
            else:  # a bar (or, in a log file, a line every few seconds) per suite
                report = stack.enter_context(Progress(f"eval {suite.name}", suite.size() or None, "items")).advance
            context = EvalContext(batch_size=batch_size, num_fewshot=num_fewshot, reward=reward, reference=reference,
                                  seed=seed, share_prefix=share_prefix, layout=layout, progress=report)
            result = suite.run(model, tokenizer, context)
        result.settings = {**suite.settings(), "num_fewshot": suite.num_fewshot(num_fewshot), **result.settings}
        results[suite.name] = result
    return results


def run_header(**settings: Any) -> dict[str, Any]:
    """The part of results.json that is not per suite: settings, versions and the date."""
    import torch
    import transformers

    from zoo.version import __version__

    return {**settings, "versions": {"zoo": __version__, "torch": torch.__version__,
                                     "transformers": transformers.__version__, "python": platform.python_version()},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def check_output_dir(output_dir: str | Path, what: str = "output_dir") -> Path:
    """Refuse an output folder that cannot be written, before any suite runs (see :mod:`zoo.writable`)."""
    from zoo.writable import check_writable_dir

    return check_writable_dir(output_dir, what)


def write_outputs(output_dir: str | Path, results: Mapping[str, SuiteResult], header: Mapping[str, Any]) -> Path:
    """``results.json`` and one ``samples_<suite>.jsonl`` per suite in ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        write_samples(output_dir / f"samples_{name}.jsonl", result.samples)
    return write_results(output_dir / "results.json", results, header)


def evaluate(model: nn.Module | None, tokenizer, suites: Sequence[str | Suite], *, data_dir: str | Path | None = None,
             num_fewshot: int | None = None, limit: int | None = None, batch_size: int = 16, reward: Any = None,
             reference: nn.Module | None = None, output_dir: str | Path | None = None,
             options: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
             metadata: Mapping[str, Any] | None = None, layout: str = "blocks") -> dict[str, dict[str, dict[str, Any]]]:
    """Evaluate an in-memory model on ``suites``; suite → metric → ``{"value", "stderr", ...}``.

    ``suites`` are registered names or :class:`Suite` instances (already loaded ones are not read
    again). With ``output_dir``, ``results.json`` and ``samples_<suite>.jsonl`` are written there;
    ``metadata`` (e.g. the model's name) is added to results.json. ``layout``: the log-likelihood
    scorer's (:class:`zoo.eval.loglik.LoglikScorer`).
    """
    results = run_suites(model, tokenizer, suites, data_dir=data_dir, num_fewshot=num_fewshot, limit=limit,
                         batch_size=batch_size, reward=reward, reference=reference, options=options, seed=seed,
                         layout=layout)
    if output_dir is not None:
        header = run_header(**dict(metadata or {}), data_dir=None if data_dir is None else str(data_dir),
                            num_fewshot=num_fewshot, limit=limit, batch_size=batch_size, seed=seed)
        write_outputs(output_dir, results, header)
    return {name: result.summary() for name, result in results.items()}
