"""``zoo bench --check DIR``: does a committed result recompute, and would today's code produce it?

For each ``results.json`` it reruns every statistic from the stored values
(:func:`zoo.bench.results.derive`) and compares with the recorded ones, compares the recorded
source hash (:func:`zoo.bench.provenance.run_source_hash`, comments and docstrings aside; a
canary's alias only for the code hash it vouched for) and numerical packages
(:func:`zoo.bench.versions.package_versions`) with today's,
reloads the config file it was run from, and re-renders ``results.md`` from the recomputed result;
all must match, and the tree it was written from must have been clean.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.bench import sources
from zoo.bench.provenance import repository_root, run_source_hash
from zoo.bench.versions import package_versions

#: ``zoo bench --check`` exit statuses.
CHECK_OK, CHECK_STALE, CHECK_UNKNOWN = 0, 1, 2


@dataclass
class CheckResult:
    """The verdict on one ``results.json``: status (:data:`CHECK_OK` ...) and the reasons."""

    path: Path
    status: int
    reasons: list[str] = field(default_factory=list)


def _differences(recorded: object, recomputed: object, where: str = "") -> list[str]:
    """Where two JSON values differ (paths, first ones first); NaN equals NaN."""
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        out = [f"{where}.{key}".lstrip(".") for key in sorted(set(recorded) ^ set(recomputed))]
        for key in recorded:
            if key in recomputed:
                out += _differences(recorded[key], recomputed[key], f"{where}.{key}")
        return out
    if isinstance(recorded, list) and isinstance(recomputed, list) and len(recorded) == len(recomputed):
        out = []
        for index, (a, b) in enumerate(zip(recorded, recomputed)):
            label = a.get("label") if isinstance(a, dict) and "label" in a else index
            out += _differences(a, b, f"{where}[{label!r}]" if isinstance(label, str) else f"{where}[{index}]")
        return out
    same = json.dumps(recorded, sort_keys=True) == json.dumps(recomputed, sort_keys=True)
    return [] if same else [where.lstrip(".") or "(the whole file)"]


def _config_changed(results: dict) -> str | None:
    """Why the config file a result was run from no longer gives its config (None: it still does)."""
    from zoo.bench.loading import load_bench_config
    from zoo.errors import ConfigError

    name = results.get("config_file")
    if not name:
        return None
    from zoo.bench.perturb import shifted

    path = Path(name) if Path(name).is_absolute() or Path(name).exists() else repository_root() / name
    if not path.exists():
        return f"its config file {name} no longer exists"
    try:
        config = load_bench_config(path, results.get("overrides") or [])
        # A perturbation run is the config on shifted seeds.
        today = (shifted(config) if results.get("perturbed") else config).to_dict()
    except ConfigError as exc:
        return f"its config file {name} no longer loads: {exc}"
    # A key added to the config schema since the run, at its default, is not a change to the config.
    today = _without_new_defaults(today, results["config"], type(config)().to_dict())
    if json.dumps(today, sort_keys=True, default=str) != json.dumps(results["config"], sort_keys=True, default=str):
        keys = sorted(k for k in today if json.dumps(today[k], sort_keys=True, default=str)
                      != json.dumps(results["config"].get(k), sort_keys=True, default=str))
        return f"its config file {name} changed since the run (keys: {', '.join(keys)})"
    return None


def check_result_file(path: Path) -> CheckResult:
    """Does ``path`` (a results.json) recompute from its stored values, hash to today's code and
    packages, and its results.md render from it with today's report code?"""
    from zoo.bench.report.files import markdown
    from zoo.bench.results import FORMAT, derive

    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return CheckResult(path, CHECK_UNKNOWN, [f"cannot read it: {exc}"])
    if results.get("format") != FORMAT:
        return CheckResult(path, CHECK_UNKNOWN, [f"it is in results format {results.get('format', 1)}, today's is "
                                                 f"{FORMAT}: regenerate it with zoo bench"])
    reasons: list[str] = []
    status = CHECK_OK
    try:
        recomputed = derive(results)
    except Exception as exc:  # a stored value edited into something the statistics cannot read
        return CheckResult(path, CHECK_STALE, [f"its statistics cannot be recomputed from its stored values "
                                               f"({type(exc).__name__}: {exc})"])
    differ = _differences(results, recomputed)
    if differ:
        status = CHECK_STALE
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        reasons.append(f"{len(differ)} recorded statistic(s) differ from what its stored values give: {shown}")
    canary = results.get("canary") or {}
    code = sources.code_source_hash()
    # A canary vouches for one code hash: the one it compared; any other code is today's own hash.
    vouched = bool(canary.get("identical")) and canary.get("to") == code
    core = canary["from"] if vouched else code
    try:
        today = run_source_hash(results["config"], core, (canary.get("plugins") or {}) if vouched else {})
    except Exception as exc:  # a plugin the result used is no longer registered
        today = f"unknown ({type(exc).__name__}: {exc})"
    if results.get("source_hash") != today:
        status = CHECK_STALE
        reasons.append(f"its source hash {results.get('source_hash')} is not today's code's {today}: the code that "
                       f"produced it changed (comments and docstrings aside)")
    recorded_packages = results.get("packages") or {}
    moved = [f"{name} {recorded_packages.get(name)} → {version}" for name, version in package_versions().items()
             if recorded_packages.get(name) != version]
    if moved:
        status = CHECK_STALE
        reasons.append("the numerical packages differ from today's: " + ", ".join(moved))
    config_problem = _config_changed(results)
    if config_problem:
        status = CHECK_STALE
        reasons.append(config_problem)
    if results.get("clean") is not True:
        status = CHECK_STALE
        dirty = ", ".join(results.get("dirty") or []) or "unknown files"
        reasons.append(f"it was written from a tree with uncommitted changes ({dirty}), so no commit reproduces it")
    table = path.parent / "results.md"
    if not table.exists():
        status = CHECK_STALE
        reasons.append("results.md is missing next to it")
    else:
        try:
            rendered = markdown(recomputed)
        except Exception as exc:  # a result the report code no longer reads
            rendered = None
            status = CHECK_STALE
            reasons.append(f"today's report code cannot render it ({type(exc).__name__}: {exc})")
        if rendered is not None and rendered != table.read_text(encoding="utf-8"):
            status = CHECK_STALE
            reasons.append("results.md differs from what today's report code renders from the recomputed results")
    if status == CHECK_OK:
        commit = str(results.get("commit"))[:12]
        reasons.append(f"every statistic recomputes from the stored values; source hash {today} and the numerical "
                       f"packages are today's; results.md is what today's code renders (commit {commit})")
    return CheckResult(path, status, reasons)


def check_results(directory: Path) -> list[CheckResult]:
    """:func:`check_result_file` for ``directory/results.json`` or every ``results.json`` below it."""
    directory = Path(directory)
    if directory.is_file():
        return [check_result_file(directory)]
    files = sorted(directory.rglob("results.json"))
    return [check_result_file(path) for path in files]


def _without_new_defaults(today: Any, recorded: Any, default: Any) -> Any:
    """``today`` without the keys the recorded config lacks whose value is the schema's default
    (a setting added after the run, left as it was then)."""
    if not isinstance(today, dict) or not isinstance(recorded, dict):
        return today
    defaults = default if isinstance(default, dict) else {}
    return {key: _without_new_defaults(value, recorded.get(key), defaults.get(key)) for key, value in today.items()
            if key in recorded or key not in defaults or defaults[key] != value}
