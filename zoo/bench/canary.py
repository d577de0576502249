"""Carrying a stage cache across a code change that moves no number: the canary.

Stage fingerprints hash the code (:func:`zoo.bench.sources.code_source_hash`), so any change to
what the core does (a refactor included) rebuilds every stage: hours on two cores. The canary
shows a change to be numerics-neutral instead. It rebuilds a declared prefix of the first seed's
pipeline (``canary.until``: task data, initial weights, pretraining, SFT, the preference data, the
proxy reward model) with today's code, under today's fingerprints, and compares every output file bit for bit with the same stages the
earlier code built (found under the earlier code's fingerprints). Only when all are identical is
today's code hash recorded as an alias of the earlier one (``source-aliases.json`` in the cache),
so every other stage of that cache is reused; results.json records the canary (which hashes,
which stages, identical or not) and ``zoo bench --check`` accepts the aliased hash only for the
code hash the canary vouched for.

A plugin module (the task, an algorithm, a suite) is hashed file by file beside the core. Given the
earlier code's sources (``earlier_source``: the bench command reads them from git at the earlier
result's commit), a plugin whose change is confined to where it imports the same core names from
(:func:`zoo.bench.sources.change_beyond_imports`: ``from zoo import f`` → ``from zoo.data import
f``) is aliased too, its digest today → its earlier one, on the same evidence as the core: the
core code those names reach is what the canary rebuilt. Any other plugin change is outside the
alias and rebuilds what it feeds.

Compared: every file a stage wrote except those that only log how the run went (timings, the
resolved config with its paths); the stage record too, minus its timings and fingerprint.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.bench.cache import DONE, Stage, StageCache, fingerprint
from zoo.bench.config import BenchConfig
from zoo.errors import ConfigError

#: Files of a stage folder that record how the run went, not what it produced (the model card
#: summarises the config and metrics, and names the upstream stages' folders, whose keys hold the code hash).
UNCOMPARED = ("run/metrics.json", "run/config.yaml", "run/.zoo-run", "run/model/README.md")
#: Stage-record keys that are measurements of the run (time, memory), not outputs.
TIMINGS = ("fingerprint", "stage_seconds", "stage_cpu_seconds", "train_seconds", "tokens_per_second",
           "peak_memory_mib", "memory_kind")


class _LookupOnly(StageCache):
    """A cache that finds stages and never builds one (the earlier code's stages must already be there)."""

    def get_or_build(self, kind: str, key: str, build: Callable[[Path], dict[str, Any]],
                     on_build: Callable[[str], None] | None = None) -> Stage:
        found = self.lookup(kind, key)
        if found is None:
            raise ConfigError(f"canary: the earlier code's {kind!r} stage ({kind}-{key}) is not in {self.root}; the "
                              f"cache cannot be carried over (run without --canary to rebuild)")
        self.events.append((kind, key, "reused"))
        return found


#: JSON files whose lists are sets written in an order that varies between processes (peft writes
#: ``target_modules`` from a Python set): compared with every list sorted.
UNORDERED_JSON = ("adapter_config.json",)


def _sorted_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_lists(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((_sorted_lists(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    return value


def _outputs(folder: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative != DONE and relative not in UNCOMPARED and not relative.startswith("run/logs/"):
            out[relative] = path.read_bytes()
            if path.name in UNORDERED_JSON:
                out[relative] = json.dumps(_sorted_lists(json.loads(out[relative])), sort_keys=True).encode()
    return out


def _record(stage: Stage) -> dict[str, Any]:
    return {k: v for k, v in json.loads((stage.path / DONE).read_text()).items() if k not in TIMINGS}


def differences(new: Stage, old: Stage) -> list[str]:
    """Which outputs of two builds of one stage differ (files, then the record)."""
    a, b = _outputs(new.path), _outputs(old.path)
    out = [name for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
    if _record(new) != _record(old):
        out.append(DONE + " (its record)")
    return out


def _build_prefix(config: BenchConfig, cache: StageCache, until: str,
                  announce: Callable[[str], None] = lambda text: None) -> list[Stage]:
    """The first seed's shared stages, in pipeline order, up to and including ``until``;
    ``announce`` is told each stage before it is found or built (building one can take minutes)."""
    from zoo.bench.stages import MODEL, SHARED, Stages

    stages = Stages(config, cache)
    seed = stages.pipeline_seed(config.seeds[0])
    wanted = SHARED[:SHARED.index(until) + 1]

    def next_stage(kind: str) -> None:
        if kind in wanted:
            announce(f"canary stage {wanted.index(kind) + 1} of {len(wanted)}: {kind}")

    next_stage("task")
    built: list[Stage] = [stages.task_data()]
    data = built[0]
    next_stage("init")
    model, upstream = stages.initial_model(data, seed)
    if "init" in stages.shared:
        built.append(stages.shared["init"])
    if "pretrain" in wanted:
        next_stage("pretrain")
        model, upstream = stages.pretrain(data, model, upstream, seed)
        built += [stages.shared["pretrain"]] if "pretrain" in stages.shared else []
    if "sft" in wanted:
        next_stage("sft")
        sft = stages.sft(data, model, upstream, seed)
        built += [sft] if sft is not None else []
    if "preferences" in wanted:  # as Stages.pipeline chains them
        sft_model, sft_key = ((str(sft.path / MODEL), sft.key) if sft is not None else
                              (model, fingerprint("start", {"pipeline_seed": seed}, upstream)))
        next_stage("preferences")
        preferences = stages.preferences(data, sft_model, sft_key, seed)
        built.append(preferences)
        if "reward_model" in wanted:
            next_stage("reward_model")
            built.append(stages.reward_model(preferences, sft_model, sft_key, seed))
    return [stage for stage in built if stage.kind in wanted]


def plugin_aliases(config: BenchConfig, earlier_source: Callable[[Path], bytes | None],
                   earlier_aliases: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """(today's digest → earlier digest of each plugin file changed only in its core imports, a
    note for each plugin file changed otherwise or with no earlier version).

    ``earlier_aliases``: the plugin aliases the earlier result was itself carried under (its
    canary's ``plugins``): its stages are keyed by the digests those map to, so today's digests
    map through them (a result carried twice still finds the stages that were built).
    """
    from zoo.bench import sources
    from zoo.bench.provenance import run_plugin_modules

    earlier_aliases = earlier_aliases or {}
    aliases: dict[str, str] = {}
    notes: list[str] = []
    for path in sorted({p for p in map(sources.module_file, run_plugin_modules(config.to_dict())) if p is not None}):
        earlier = earlier_source(path)
        if earlier is None:
            notes.append(f"{path.name}: no earlier version to compare with")
            continue
        today, before = sources._file_digest(path), sources.code_digest(earlier)
        built = earlier_aliases.get(before, before)  # the digest the earlier result's stages are keyed by
        if today == before:
            if built != today:
                aliases[today] = built
            continue
        why = sources.change_beyond_imports(earlier, path.read_bytes())
        if why is None:
            aliases[today] = built
        else:
            notes.append(f"{path.name}: {why} (its stages rebuild)")
    return aliases, notes


def run_canary(config: BenchConfig, cache_root: Path, earlier_core_hash: str,
               announce: Callable[[str], None] | None = None, earlier_commit: str | None = None,
               earlier_source: Callable[[Path], bytes | None] | None = None,
               earlier_plugin_aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """Rebuild the canary stages with today's code and compare them with the earlier code's.

    Returns the canary record for results.json; when every output is identical, also writes the
    alias today's code hash → ``earlier_core_hash`` into the cache (so the run that follows reuses
    it), with the plugin files :func:`plugin_aliases` finds changed only in their imports, read at
    ``earlier_commit`` (git) or by ``earlier_source``. ``earlier_plugin_aliases``: the plugin
    aliases of the canary the earlier result was itself carried by, if it was.
    """
    from zoo.bench import sources
    from zoo.bench.provenance import git_source

    if earlier_source is None and earlier_commit:
        earlier_source = git_source(earlier_commit)

    announce = announce or (lambda text: None)
    until = config.canary.until
    today = sources.code_source_hash()
    record: dict[str, Any] = {"from": earlier_core_hash, "to": today, "until": until, "stages": [],
                              "identical": None}
    plugins: dict[str, str] = {}
    if earlier_source is not None:
        plugins, notes = plugin_aliases(config, earlier_source, earlier_plugin_aliases)
        record["plugins"] = plugins
        for note in notes:
            announce(f"canary: {note}")
        if notes:
            record["plugin_notes"] = notes
    if today == earlier_core_hash and not plugins:
        record["identical"] = True
        record["note"] = "the code hash did not change: nothing to carry over"
        return record
    import torch

    if config.threads is not None:  # as the run did: the thread count changes float reductions
        torch.set_num_threads(config.threads)
    # A config without ``threads`` ran at torch's default; a canary under another count (say,
    # OMP_NUM_THREADS=1) rebuilds other float reductions, so the record says which it used.
    record["threads"] = torch.get_num_threads()
    sources.use_aliases(None)
    announce(f"canary: rebuilding the first seed's stages up to {until} with today's code")
    new = _build_prefix(config, StageCache(cache_root), until, announce)
    sources._aliases.update({today: {"from": earlier_core_hash, "plugins": plugins}})
    try:
        old = _build_prefix(config, _LookupOnly(cache_root), until)
    finally:
        sources.use_aliases(None)
    identical = True
    for a, b in zip(new, old):
        differ = differences(a, b)
        identical &= not differ
        record["stages"].append({"kind": a.kind, "today": a.key, "earlier": b.key, "differences": differ})
        announce(f"canary {a.kind}: " + ("bit-identical" if not differ else "differs in " + ", ".join(differ[:3])))
    record["identical"] = identical
    if identical:
        aliases_file = Path(cache_root) / sources.ALIASES
        try:
            aliases = json.loads(aliases_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            aliases = {}
        aliases[today] = record
        aliases_file.write_text(json.dumps(aliases, indent=2, sort_keys=True))
    return record
