"""The parts of ``results.md`` that state verdicts: the headline table, the pairwise matrix,
hyperparameter selection, KL-matched gold reward, the suites and the pipelines (findings and the
protocol history are in :mod:`zoo.bench.report.findings`, the costs in
:mod:`zoo.bench.report.costs`). A little over 300 lines: each section is one function, and they
share the cell formats, so splitting them would scatter one table's wording over files.

Everything here is a pure function of ``results.json`` and holds no wall-clock figure, so a
rerun of the same code and config renders the same bytes (``zoo bench --check`` relies on it;
timings stay in results.json and on the terminal).
"""
from __future__ import annotations

import math
from typing import Any

from zoo.bench.report.cells import finite as _finite
from zoo.bench.report.cells import num as _num
from zoo.bench.report.cells import table as _table

NOT_SIGNIFICANT = "n.s."


def _pm(summary: dict[str, Any], digits: int = 2) -> str:
    text = _num(summary.get("mean"), digits)
    half = summary.get("ci95")
    if text == "–" or half is None or math.isnan(half):
        return text
    return f"{text} ± {half:.{digits}f}"


def _interval(interval: dict[str, Any]) -> str:
    mean = interval.get("mean")
    if mean is None or math.isnan(mean):
        return "–"
    low, high = interval.get("low"), interval.get("high")
    if low is None or math.isnan(low):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _signed_interval(interval: dict[str, Any]) -> str:
    mean, low, high = interval.get("mean"), interval.get("low"), interval.get("high")
    if mean is None or math.isnan(mean):
        return "–"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def verdict(contender: dict[str, Any]) -> str:
    """The "vs best" cell: the row's difference from the best row with its 95% interval, and the verdict."""
    if contender.get("best"):
        return "best"
    vs = contender.get("vs_best")
    if not vs:
        return "–"
    mean, low, high = vs["difference_mean"], vs["low"], vs["high"]
    if mean is None or math.isnan(mean):
        return vs["verdict"]
    if low is None or math.isnan(low):
        return f"{mean:+.2f}: {vs['verdict']}"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]: {vs['verdict']}"


def collapse_cell(contender: dict[str, Any]) -> str:
    """Collapsed seeds out of all, the exact 95% interval of the rate, and McNemar's p against SFT."""
    c = contender["collapse"]
    text = f"{c['collapsed']}/{c['seeds']} [{c['low']:.2f}, {c['high']:.2f}]"
    if contender["baseline"]:
        return text
    return text + f" p={c['vs_sft_p']:.2f}"


HEADLINE = ("run", "gold reward [95%]", "Δ gold vs SFT", "vs best [95%]", "win rate vs SFT", "KL(π‖π_SFT)",
            "proxy RM", "implicit-reward pref. acc.", "verbatim probe acc.", "held-out probe acc. [95%]",
            "Δ held-out probe [95%]", "collapsed [95%]")


def headline_rows(results: dict[str, Any]) -> list[list[str]]:
    out = []
    base = next(c for c in results["contenders"] if c["baseline"])
    probe_before = base["summary"]["probe_accuracy"]["mean"]
    for c in results["contenders"]:
        s = c["summary"]
        if c["baseline"]:
            delta = "–"
        else:
            vs = c["vs_sft"]
            delta = _num(vs.get("difference_mean"), signed=True)
            if delta != "–":
                delta += "" if vs.get("significant") else f" ({NOT_SIGNIFICANT})"
        probe = s["probe_accuracy"]["mean"]
        probe_text = _num(probe)
        if not c["baseline"] and probe_text != "–" and probe_before is not None and not math.isnan(probe_before):
            probe_text += f" ({probe - probe_before:+.2f})"
        label = c["label"]
        if c.get("selected") and c.get("setting"):
            label += " (" + ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in c["setting"].items()) + ")"
        heldout = c.get("heldout_probe_interval")
        change = c.get("heldout_probe_change")
        out.append([label, _interval(c["gold_interval"]), delta, verdict(c), _pm(s["win_rate"]), _pm(s["kl"]),
                    _pm(s["proxy"]), _pm(s["preference_accuracy"]), probe_text,
                    _interval(heldout) if heldout else "–",
                    "–" if c["baseline"] or not change else _signed_interval(change), collapse_cell(c)])
    return out


#: What each per-seed pipeline stage redraws, in words, in pipeline order.
_REDRAWN = {"init": "initial weights", "pretrain": "pretraining", "sft": "SFT", "preferences": "preference data",
            "reward_model": "proxy reward model"}


def redrawn_stages(results: dict[str, Any]) -> list[str]:
    """What a seed of a ``pipeline``-scoped run redraws: the stages its pipeline built, then the alignment
    run and the evaluation samples. A pretrained model has no initial weights or pretraining stage, and
    human-labelled pairs are data, not a draw."""
    pipeline = next(iter((results.get("pipelines") or {}).values()), {})
    words = [text for kind, text in _REDRAWN.items() if kind in pipeline
             and not (kind == "preferences" and pipeline[kind].get("labels") == "human")]
    return [*words, "alignment run", "evaluation samples"]


def headline_notes(results: dict[str, Any]) -> list[str]:
    seeds = results["seeds"]
    comparisons = results["comparisons"]
    failure = results["config"]["failure"]
    scope = (f"a whole pipeline ({', '.join(redrawn_stages(results))})" if results.get("seed_scope") == "pipeline"
             else "the alignment run and the evaluation samples (the shared stages are built once)")
    covers = next((c["gold_interval"]["covers"] for c in results["contenders"] if c["baseline"]), "")
    lines = [
        f"Every number is measured on the test prompts. Each of the {len(seeds)} seed(s) {seeds} redraws {scope}.",
        f"Gold reward: mean over seeds and test prompts; [95%]: {covers} (a percentile bootstrap over a few "
        f"seeds under-covers; see docs/benchmark-protocol.md for the coverage of each).",
        f"Δ gold vs SFT: {comparisons['test']}; the rows against the baseline are one family, Holm-corrected "
        f"among themselves ({comparisons.get('vs_sft_correction', comparisons['correction'])}; the matrix of "
        f"every pair below is corrected over all its pairs). \"{NOT_SIGNIFICANT}\" means not significant: the "
        f"data do not show a difference.",
        f"vs best: the row's paired gold difference from the best row ({comparisons['best']!r}) with its 95% "
        f"Student-t interval; \"below best\" when significant (Holm over the {len(comparisons['vs_best'])} rows), "
        + (f"\"equivalent\" when two one-sided tests put it within ±{comparisons['equivalence_margin']:g}, "
           if comparisons.get("equivalence_margin") is not None else "no equivalence margin is declared, ")
        + "otherwise \"cannot tell\": a noisy row is not called tied.",
        "Other ± columns: 95% Student-t intervals across seeds.",
        f"Collapsed: seeds where KL(π‖π_SFT) > {failure['max_kl']:g} nats or the gold reward fell more than "
        f"{failure['max_gold_drop_sd']:g} SD (of the SFT model's per-sample gold reward) below the SFT model's, "
        f"out of all seeds, with the exact (Clopper–Pearson) 95% interval of the rate and McNemar's exact p "
        f"against the SFT model (seeds pair them). Collapse is an outcome of its own (a claim may test it); "
        f"collapsed seeds are left out of the other columns and the gold tests, and their values stay in "
        f"results.json.",
    ]
    if human_labels(results):
        lines += [
            "No gold reward exists for real text: 'gold reward', its Δ and the win rate are the scores of the judge, "
            "the proxy reward model trained on the train pairs (its held-out accuracy on human labels is under "
            "Pipelines). Best-of-n and the online runs optimise that same model, so a gain on it is expected of "
            "them and says little unless the judge-free figures agree: implicit-reward preference accuracy on "
            "human labels, KL, response length and the suites below.",
            "Implicit-reward pref. acc.: held-out human-labelled pairs of the test prompts ranked by log π − log "
            "π_ref (π_ref: the unaligned model), DPO's own implicit reward, so it favours the methods that optimise "
            "it directly; the unaligned model and decoding-time runs score 0.50.",
        ]
    else:
        lines.append("Implicit-reward pref. acc.: held-out gold-labelled pairs ranked by log π − log π_SFT, DPO's own "
                     "implicit reward, so it favours the methods that optimise it directly; the SFT model scores 0.50. "
                     "The gold reward and the win rate are the algorithm-neutral quality figures.")
    if any(_finite(c["summary"]["probe_accuracy"]["mean"]) for c in results["contenders"]):
        lines.append("Probes (the alignment tax), 4 choices, chance 0.25. Verbatim: the MMLU-format items "
                     "pretraining quizzed word for word (rote recall; change from SFT in parentheses). Held-out: the "
                     "same facts in a form no training text uses for them (MMLU-format, or a cloze scored by each "
                     "choice's log-likelihood; the task's docs say which); [95%]: Student-t over per-seed accuracies "
                     "(over items with one seed), the Δ paired with the SFT model item by item.")
    return lines


def human_labels(results: dict[str, Any]) -> bool:
    """Whether the task's preference labels are human ones (no gold reward: the proxy is the judge)."""
    stages = [results.get("shared_stages") or {}, *(results.get("pipelines") or {}).values()]
    return any((s.get("preferences") or {}).get("labels") == "human" for s in stages)


def wilson_interval(accuracy: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``accuracy`` observed on ``n`` items (95% by default)."""
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def suite_lines(results: dict[str, Any]) -> list[str]:
    """The evaluation suites of each run beside the baseline's: the alignment tax, before and after."""
    columns: list[tuple[str, str]] = []
    for c in results["contenders"]:
        for seed in c["seeds"].values():
            for suite, metrics in sorted((seed.get("suites") or {}).items()):
                for metric in metrics:
                    if (suite, metric) not in columns:
                        columns.append((suite, metric))
    if not columns:
        return []
    limit = (results["config"].get("evaluation") or {}).get("suite_limit")
    base = next(c for c in results["contenders"] if c["baseline"])

    def mean(contender: dict[str, Any], suite: str, metric: str) -> float | None:
        values = [seed["suites"][suite][metric] for seed in contender["seeds"].values()
                  if _finite(((seed.get("suites") or {}).get(suite) or {}).get(metric))]
        return sum(values) / len(values) if values else None

    body = []
    for c in results["contenders"]:
        row = [c["label"], _num(c["summary"]["length"]["mean"], 1)]
        for suite, metric in columns:
            value, before = mean(c, suite, metric), mean(base, suite, metric)
            if value is None:
                row.append("–")
                continue
            text = f"{value:.2f}"
            if limit and len(results["seeds"]) == 1:
                low, high = wilson_interval(value, int(limit))
                text += f" [{low:.2f}, {high:.2f}]"
            if not c["baseline"] and before is not None:
                text += f" ({value - before:+.2f})"
            row.append(text)
        body.append(row)
    header = ["run", "response length"] + [f"{suite} {metric}" for suite, metric in columns]
    interval = (f"[95%]: Wilson interval over the {limit} questions of each suite (one seed); " if limit and
                len(results["seeds"]) == 1 else "")
    return (["## Evaluation suites: the alignment tax", "",
             f"Each run's suite scores beside the baseline's ({base['label']!r}), change in parentheses; {interval}"
             f"a change smaller than the interval's half-width is within what re-drawing the questions would move. "
             f"Response length: mean tokens of the test-prompt samples.", ""]
            + _table(header, body) + [""])


def pairwise_matrix(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Row − column gold-reward differences, "n.s." where Holm-corrected p ≥ 0.05."""
    labels = [c["label"] for c in results["contenders"]]
    index = {label: i for i, label in enumerate(labels)}
    cells = [["" if i != j else "·" for j in range(len(labels))] for i in range(len(labels))]
    for pair in results["comparisons"]["pairs"]:
        i, j = index[pair["a"]], index[pair["b"]]
        d = pair["difference_mean"]
        if d is None or math.isnan(d):
            cells[i][j] = cells[j][i] = "–"
            continue
        p = pair["adjusted_p"]
        tail = f" (p={p:.3f})" if pair["significant"] else f" {NOT_SIGNIFICANT}"
        cells[i][j] = f"{d:+.2f}{tail}"
        cells[j][i] = f"{-d:+.2f}{tail}"
    header = ["row − column"] + [str(i + 1) for i in range(len(labels))]
    body = [[f"{i + 1}. {label}"] + row for i, (label, row) in enumerate(zip(labels, cells))]
    return header, body


def selection_lines(results: dict[str, Any]) -> list[str]:
    selections = results.get("selections") or {}
    if not selections:
        return []
    first = next(iter(selections.values()))
    criterion = first.get("criterion", "gold")
    oracle = (" This is the gold-oracle ablation: no user has the gold reward, so these rows are an upper bound "
              "on what selection can do." if criterion == "gold" else "")
    tuning = sorted({s for sel in selections.values() for s in sel["tuning_seeds"]})
    lines = ["## Hyperparameter selection (validation prompts, tuning seeds only)", "",
             f"Each selected run trained every setting of its sweep on the tuning seed(s) {tuning}, none of them a "
             f"reported seed, and kept the one with the highest {first.get('criterion_text', criterion)}; settings "
             f"that failed that rule were not eligible. The table above reports that setting on the test prompts."
             f"{oracle}", ""]
    body = []
    for group, selection in selections.items():
        for trial in selection["trials"]:
            chosen = "selected" if trial["label"] == selection["selected_label"] else ""
            kl = [v["kl"] for v in trial["validation"].values()]
            body.append([group, ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in trial["setting"].items()),
                         _num(trial.get("proxy")), _num(trial["gold"]), _num(sum(kl) / len(kl)),
                         "yes" if trial["failed"] else "no", chosen])
    lines += _table(["run", "setting", "validation proxy", "validation gold", "validation KL", "not eligible", ""],
                    body)
    trials = {group: len(sel["trials"]) for group, sel in selections.items()}
    lines += ["", "Trials per run: " + ", ".join(f"{g} {n}" for g, n in trials.items()) + ".", ""]
    return lines


def kl_matched_lines(results: dict[str, Any]) -> list[str]:
    matched = results.get("kl_matched") or []
    if not matched:
        return []
    budgets = list(matched[0]["budgets"])
    lines = ["## Gold reward at matched KL", "",
             "Each sweep's (KL, gold) curve, interpolated linearly between its settings at each KL budget (nats per "
             "response); \"–\" where the sweep does not reach the budget. [95%]: hierarchical bootstrap over seeds and "
             "test prompts, the same draw for every setting of a sweep. Every seed counts here, collapsed or not.", ""]
    body = [[m["group"]] + [_interval(m["budgets"][b]) for b in budgets] for m in matched]
    return lines + _table(["sweep"] + [f"gold at KL = {b}" for b in budgets], body) + [""] \
        + kl_matched_comparison_lines(results)


def kl_matched_comparison_lines(results: dict[str, Any]) -> list[str]:
    """Two sweeps against each other at each KL budget both reach: difference, interval, Holm-adjusted p."""
    compared = results.get("kl_matched_comparisons") or {}
    if not compared.get("pairs"):
        return []
    untested = (f" {compared['untested']} further sweep pairs and budgets have fewer than two seeds where both "
                "curves reach the budget, and no test." if compared.get("untested") else "")
    lines = ["Sweep against sweep at equal KL: the difference of their gold rewards (first minus second) with its "
             f"95% Student-t interval; {compared['test']}; {compared['correction']}. Only seeds where both sweeps "
             f"reach the budget are paired.{untested}", ""]
    body = []
    for pair in compared["pairs"]:
        # every listed pair has two or more seeds, so its interval is finite
        shown = _signed_interval({"mean": pair["difference_mean"], "low": pair["low"], "high": pair["high"]})
        p = pair["adjusted_p"]
        verdict = ("–" if math.isnan(p) else f"p = {p:.3f}" if pair["significant"] else
                   f"{NOT_SIGNIFICANT} (p = {p:.2f})")
        body.append([f"{pair['a']} − {pair['b']}", f"{pair['budget']:g}", shown, str(pair["difference_n"]), verdict])
    return lines + _table(["sweeps", "KL", "gold difference [95%]", "seeds", "Holm-adjusted"], body) + [""]


def comparison_lines(results: dict[str, Any]) -> list[str]:
    header, body = pairwise_matrix(results)
    return (["## Every pair of runs", "",
             f"Gold-reward difference, row minus column; {results['comparisons']['test']}; "
             f"{results['comparisons']['correction']}; \"{NOT_SIGNIFICANT}\": not significant (Holm-adjusted p ≥ "
             f"0.05), otherwise the adjusted p. Also drawn in pairwise.png.", ""]
            + _table(header, body) + [""])


def pipeline_lines(results: dict[str, Any]) -> list[str]:
    """The shared stages of each pipeline: preference data and the proxy reward model."""
    body = []
    for seed, stages in (results.get("pipelines") or {}).items():
        prefs, rm = stages.get("preferences", {}), stages.get("reward_model", {})
        body.append([seed, str(prefs.get("pairs", "–")), _num(prefs.get("sft_sample_gold_mean")),
                     _num(prefs.get("label_agreement_with_gold")), _num(rm.get("heldout_accuracy")),
                     str(prefs.get("heldout_pairs", "–"))])
    if not body:
        return []
    human = any(stages.get("preferences", {}).get("labels") == "human"
                for stages in (results.get("pipelines") or {}).values())
    source = ("Preference pairs are the task's own human-labelled pairs of the training prompts; there is no gold "
              "reward, so every 'gold' figure is the proxy reward model's score (the judge), and its accuracy is on "
              "the human-labelled pairs of the test prompts." if human else
              "Preference pairs come from SFT samples on the training prompts, labelled by a noisy Bradley–Terry draw "
              "on the gold reward; the proxy reward model's accuracy is on noise-free gold-labelled pairs of the test "
              "prompts.")
    if (results.get("config") or {}).get("reward_model", {}).get("preferences") == "rankings":
        source += (" The proxy reward model learns from each training prompt's whole ranking of its samples (every "
                   "pair of it), not from the one pair.")
    return (["## Pipelines (one per seed)", "", source, ""]
            + _table(["seed", "pairs", "SFT sample gold", "labels agreeing with gold", "proxy RM held-out acc.",
                      "held-out pairs"], body) + [""])
