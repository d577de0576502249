"""The numbers of results.md, recomputed from results.json's stored values with numpy and scipy only.

An independent implementation: nothing here imports ``zoo`` (``zoo.bench.stats`` above all). It
reads the stored per-seed, per-prompt and per-item values, recomputes collapses, intervals, paired
tests, Holm corrections, the differences from the best row, collapse rates and the claims'
verdicts, formats them as the report does, and compares them with the cells of results.md
(:func:`assert_recomputes`), then the budget, selection and KL-matched tables the same way.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05


# ----- the statistics, written out again ------------------------------------------------------------


def interval(values):
    """(mean, low, high) of the 95% Student-t interval; NaN bounds below two values, NaN mean with none."""
    values = [v for v in values if v is not None]
    if not values:
        return math.nan, math.nan, math.nan
    m = float(np.mean(values))
    if len(values) < 2:
        return m, math.nan, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    return m, m - half, m + half


def paired(a, b):
    """(mean difference, low, high, two-sided p) of a − b."""
    d = np.asarray(a, float) - np.asarray(b, float)
    m, low, high = interval(list(d))
    if d.size < 2:
        return m, low, high, math.nan
    if np.all(d == d[0]):
        return m, low, high, 1.0 if d[0] == 0 else 0.0
    return m, low, high, float(stats.ttest_rel(a, b).pvalue)


def holm(ps):
    order = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    out, running = [math.nan] * len(ps), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        out[i] = running
    return out


def mcnemar(first, second):
    return 1.0 if first + second == 0 else float(stats.binomtest(first, first + second, 0.5).pvalue)


# ----- the report's cells -----------------------------------------------------------------------------


def n2(x, signed=False):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def pm(values):
    m, low, high = interval(values)
    if math.isnan(m):
        return "–"
    return f"{m:.2f}" if math.isnan(low) else f"{m:.2f} ± {(high - low) / 2:.2f}"


def bracket(m, low, high, signed=False):
    if math.isnan(m):
        return "–"
    if math.isnan(low):
        return n2(m, signed)
    return f"{n2(m, signed)} [{n2(low, signed)}, {n2(high, signed)}]"


def recompute(results):
    """The expected cells: headline rows, pairwise matrix and verdicts, from stored values only."""
    seeds = [str(s) for s in results["seeds"]]
    rows = results["contenders"]
    failure = results["config"]["failure"]
    base = next(c for c in rows if c["baseline"])
    mean_of = {(c["label"], s): float(np.mean(c["seeds"][s]["gold_per_prompt"])) for c in rows for s in seeds}
    failed = {}
    for c in rows:
        for s in seeds:
            kl = float(np.mean(c["seeds"][s]["kl_per_prompt"]))
            sft = mean_of[(base["label"], s)]
            g = mean_of[(c["label"], s)]
            failed[(c["label"], s)] = (not c["baseline"]) and (
                math.isnan(g) or math.isnan(kl) or kl > failure["max_kl"]
                or g < sft - failure["max_gold_drop_sd"] * base["seeds"][s]["gold_sd"])
    kept = {c["label"]: [s for s in seeds if not failed[(c["label"], s)]] for c in rows}
    if len(seeds) > 1:
        sample = {c["label"]: {s: mean_of[(c["label"], s)] for s in kept[c["label"]]} for c in rows}
    else:
        sample = {c["label"]: ({} if failed[(c["label"], seeds[0])] else
                               dict(enumerate(c["seeds"][seeds[0]]["gold_per_prompt"]))) for c in rows}

    def test(a, b):
        keys = [k for k in sample[a] if k in sample[b]]
        return paired([sample[a][k] for k in keys], [sample[b][k] for k in keys]), len(keys)

    labels = [c["label"] for c in rows]
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    tested = {pair: test(*pair) for pair in pairs}
    adjusted = dict(zip(pairs, holm([tested[p][0][3] for p in pairs])))
    gold = {}
    for c in rows:
        k = kept[c["label"]]
        if len(k) == 1:
            gold[c["label"]] = interval(c["seeds"][k[0]]["gold_per_prompt"])
        else:
            gold[c["label"]] = interval([mean_of[(c["label"], s)] for s in k])
    finite = {label: g[0] for label, g in gold.items() if not math.isnan(g[0])}
    best = max(finite, key=lambda label: finite[label])
    others = [label for label in labels if label != best and label in finite]
    versus = {label: test(label, best)[0] for label in others}
    versus_adjusted = dict(zip(others, holm([versus[label][3] for label in others])))
    margin = results["config"].get("equivalence_margin")

    def best_cell(label):
        if label == best:
            return "best"
        if label not in versus:
            return "–"
        m, low, high, _ = versus[label]
        p = versus_adjusted[label]
        word = "cannot tell"
        if not math.isnan(p) and p < ALPHA and m < 0:
            word = "below best"
        elif margin is not None and not math.isnan(low):
            # TOST at α is the (1 − 2α) interval inside ±margin
            keys = [k for k in sample[label] if k in sample[best]]
            d = [sample[label][k] - sample[best][k] for k in keys]
            half90 = stats.t.ppf(0.95, len(d) - 1) * np.std(d, ddof=1) / math.sqrt(len(d))
            if -margin < m - half90 and m + half90 < margin:
                word = "equivalent"
        if math.isnan(m):
            return word
        if math.isnan(low):
            return f"{m:+.2f}: {word}"
        return f"{m:+.2f} [{low:+.2f}, {high:+.2f}]: {word}"

    # Δ vs SFT: the m − 1 rows against the baseline are one Holm family of their own.
    against_base = [pair for pair in pairs if base["label"] in pair]
    base_adjusted = dict(zip(against_base, holm([tested[p][0][3] for p in against_base])))
    probe_before = interval([base["seeds"][s]["probe_accuracy"] for s in kept[base["label"]]])[0]
    headline = {}
    for c in rows:
        label, k = c["label"], kept[c["label"]]
        if c["baseline"]:
            delta = "–"
        else:
            pair = (base["label"], label) if (base["label"], label) in tested else (label, base["label"])
            (m, _, _, _), _ = tested[pair]
            m = -m if pair[0] == base["label"] else m
            delta = n2(m, signed=True)
            if delta != "–" and not (base_adjusted[pair] < ALPHA):
                delta += " (n.s.)"
        probe = interval([c["seeds"][s]["probe_accuracy"] for s in k])[0]
        probe_text = n2(probe)
        if not c["baseline"] and probe_text != "–" and not math.isnan(probe_before):
            probe_text += f" ({probe - probe_before:+.2f})"
        with_items = [s for s in k if c["seeds"][s].get("heldout_probe_correct")]
        if with_items:
            correct = [c["seeds"][s]["heldout_probe_correct"] for s in with_items]
            change = [np.subtract(c["seeds"][s]["heldout_probe_correct"], base["seeds"][s]["heldout_probe_correct"])
                      for s in with_items]
            if len(with_items) == 1:
                held, moved = interval(correct[0]), interval(list(change[0]))
            else:
                held, moved = interval([np.mean(v) for v in correct]), interval([np.mean(v) for v in change])
            held_text = bracket(*held)
            moved_text = "–" if c["baseline"] else bracket(*moved, signed=True)
        else:
            held_text = moved_text = "–"
        collapsed = [s for s in seeds if failed[(label, s)]]
        n = len(seeds)
        ci = stats.binomtest(len(collapsed), n).proportion_ci(method="exact")
        collapse = f"{len(collapsed)}/{n} [{ci.low:.2f}, {ci.high:.2f}]"
        if not c["baseline"]:
            base_collapsed = [s for s in seeds if failed[(base["label"], s)]]
            p = mcnemar(len(set(collapsed) - set(base_collapsed)), len(set(base_collapsed) - set(collapsed)))
            collapse += f" p={p:.2f}"
        shown = label
        if c.get("selected") and c.get("setting"):
            shown += " (" + ", ".join(f"{key.rpartition('.')[2]}={v}" for key, v in c["setting"].items()) + ")"
        per_seed = {metric: [c["seeds"][s][metric] for s in k] for metric in ("preference_accuracy",)}
        headline[shown] = [shown, bracket(*gold[label]), delta, best_cell(label),
                           pm([float(np.mean(c["seeds"][s]["win_per_prompt"])) for s in k]),
                           pm([float(np.mean(c["seeds"][s]["kl_per_prompt"])) for s in k]),
                           pm([float(np.mean(c["seeds"][s]["proxy_per_prompt"])) for s in k]),
                           pm(per_seed["preference_accuracy"]), probe_text, held_text, moved_text, collapse]
    matrix = {}
    for (a, b), ((m, _, _, _), _) in tested.items():
        tail = f" (p={adjusted[(a, b)]:.3f})" if adjusted[(a, b)] < ALPHA else " n.s."
        matrix[(a, b)] = "–" if math.isnan(m) else f"{m:+.2f}{tail}"
        matrix[(b, a)] = "–" if math.isnan(m) else f"{-m:+.2f}{tail}"
    claims = []
    for claim in results["config"].get("claims") or []:
        better, worse = claim["better"], claim["worse"]
        if claim.get("outcome") == "collapse":
            a = {s for s in seeds if failed[(better, s)]}
            b = {s for s in seeds if failed[(worse, s)]}
            claims.append(((len(b) - len(a)) / len(seeds), mcnemar(len(a - b), len(b - a))))
        elif not kept[better] or not kept[worse]:
            claims.append(None)
        else:
            pair = (better, worse) if (better, worse) in tested else (worse, better)
            (m, _, _, p), _ = tested[pair]
            claims.append((m if pair[0] == better else -m, p))
    claim_adjusted = holm([math.nan if c is None else c[1] for c in claims])
    verdicts = []
    for c, p in zip(claims, claim_adjusted):
        if c is None:
            verdicts.append(None)  # "cannot tell: every seed collapsed", worded by the report
        elif math.isnan(c[0]) or math.isnan(p):
            verdicts.append("cannot tell: too few seeds for a test")
        elif p >= ALPHA or c[0] == 0:
            verdicts.append(f"not significant ({c[0]:+.2f}, Holm-adjusted p = {p:.2f})")
        else:
            shown = "< 0.001" if p < 0.001 else f"= {p:.3f}"
            verdicts.append(f"{'reproduced' if c[0] > 0 else 'contradicted'} ({c[0]:+.2f}, Holm-adjusted p {shown})")
    return headline, matrix, verdicts, labels


def budget_rows(results):
    """The budget table: per trained row, means over kept seeds of steps, drawn, samples, tokens, FLOPs."""
    seeds = [str(s) for s in results["seeds"]]
    failed = _failed(results)
    rows = results.get("budget", {}).get("rows") or {}
    batch = (results["config"].get("alignment") or {}).get("train", {}).get("batch_size")
    out = {}
    for c in results["contenders"]:
        k = [s for s in seeds if not failed[(c["label"], s)]]
        steps = [c["seeds"][s]["steps"] for s in k if c["seeds"][s]["steps"] is not None]
        if not steps:
            continue

        def avg(name):
            values = [c["seeds"][s][name] for s in k if c["seeds"][s][name] is not None]
            return float(np.mean(values)) if values else math.nan

        flops = [6.0 * c["seeds"][s]["parameters"] * c["seeds"][s]["tokens"]
                 + 2.0 * c["seeds"][s]["parameters"] * (c["seeds"][s]["tokens_generated"] or 0) for s in k]
        b = {**(results["config"].get("alignment") or {}).get("train", {}), **(c.get("train") or {})}.get(
            "batch_size", batch)
        mean_steps = float(np.mean(steps))
        capped = " (capped)" if (rows.get(c["label"]) or {}).get("capped") else ""
        cells = [f"{mean_steps:.0f}{capped}", f"{mean_steps * b:.0f}" if isinstance(b, int) else "–"]
        cells += [n0(avg(name)) for name in ("samples_generated", "tokens_generated", "tokens")]
        out[c["label"]] = [c["label"], *cells, f"{float(np.mean(flops)):.2e}"]
    return out


def n0(x):
    return "–" if math.isnan(x) else f"{x:.0f}"


def _failed(results):
    seeds = [str(s) for s in results["seeds"]]
    failure = results["config"]["failure"]
    base = next(c for c in results["contenders"] if c["baseline"])
    out = {}
    for c in results["contenders"]:
        for s in seeds:
            g, kl = float(np.mean(c["seeds"][s]["gold_per_prompt"])), float(np.mean(c["seeds"][s]["kl_per_prompt"]))
            sft = float(np.mean(base["seeds"][s]["gold_per_prompt"]))
            out[(c["label"], s)] = (not c["baseline"]) and (
                math.isnan(g) or math.isnan(kl) or kl > failure["max_kl"]
                or g < sft - failure["max_gold_drop_sd"] * base["seeds"][s]["gold_sd"])
    return out


def selection_rows(results):
    """The selection table: each trial's validation means and the setting its criterion picks."""
    out = []
    for group, selection in (results.get("selections") or {}).items():
        trials = selection["trials"]
        scores = []
        for t in trials:
            values = list(t["validation"].values())
            scores.append({name: float(np.mean([v[name] for v in values])) for name in ("gold", "proxy", "kl")}
                          | {"failed": any(v["failed"] for v in values)})
        eligible = [i for i, sc in enumerate(scores) if not sc["failed"]] or list(range(len(trials)))
        criterion = selection["criterion"]
        chosen = max(eligible, key=lambda i: scores[i][criterion])  # first of equals
        assert trials[chosen]["label"] == selection["selected_label"], group
        for i, (t, sc) in enumerate(zip(trials, scores)):
            setting = ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in t["setting"].items())
            out.append([group, setting, n2(sc["proxy"]), n2(sc["gold"]), n2(sc["kl"]), "yes" if sc["failed"] else "no",
                        "selected" if i == chosen else ""])
    return out


def _value_at(xs, ys, x):
    order = np.argsort(np.asarray(xs, float), kind="stable")
    xs, ys = np.asarray(xs, float)[order], np.asarray(ys, float)[order]
    return math.nan if x < xs[0] or x > xs[-1] else float(np.interp(x, xs, ys))


def kl_matched_rows(results, replicates=2000):
    """The KL-matched table: each unselected sweep's gold at each KL budget, with the two-level bootstrap
    (seeds, then prompts; one draw for every point of a sweep, numpy's default_rng(0))."""
    seeds = [str(s) for s in results["seeds"]]
    groups = {}
    for c in results["contenders"]:
        if c["sweep_key"] is not None and not c["selected"]:
            groups.setdefault(c["group"], []).append(c)
    out = []
    for group, members in groups.items():
        if len(members) < 2:
            continue
        kl = np.asarray([[c["seeds"][s]["kl_per_prompt"] for s in seeds] for c in members], float)
        gold = np.asarray([[c["seeds"][s]["gold_per_prompt"] for s in seeds] for c in members], float)
        row = [group]
        for budget in results["config"]["kl_budgets"]:
            estimate = _value_at(kl.mean(axis=(1, 2)), gold.mean(axis=(1, 2)), budget)
            if math.isnan(estimate):
                row.append("–")
                continue
            rng = np.random.default_rng(0)
            values = []
            n_seeds, n_prompts = kl.shape[1], kl.shape[2]
            for _ in range(replicates):
                drawn_seeds = rng.integers(0, n_seeds, size=n_seeds)
                drawn_prompts = rng.integers(0, n_prompts, size=(n_seeds, n_prompts))
                values.append(_value_at(kl[:, drawn_seeds[:, None], drawn_prompts].mean(axis=(1, 2)),
                                        gold[:, drawn_seeds[:, None], drawn_prompts].mean(axis=(1, 2)), budget))
            finite = np.asarray([v for v in values if not math.isnan(v)])
            if finite.size == 0:
                row.append(f"{estimate:.2f}")
                continue
            low, high = np.percentile(finite, [2.5, 97.5])
            row.append(f"{estimate:.2f} [{low:.2f}, {high:.2f}]")
        out.append(row)
    return out


def table_rows(markdown, first_header_cell):
    """The body rows of the first table of results.md whose header starts with ``first_header_cell``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header_cell} |"))
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append([cell.strip().replace("\\|", "|") for cell in line.strip("|").split(" | ")])
    return body


def assert_recomputes(results, markdown):
    headline, matrix, verdicts, labels = recompute(results)
    shown = table_rows(markdown, "run")
    assert [row[0] for row in shown] == list(headline)
    for row in shown:
        assert row == headline[row[0]], row[0]
    matrix_rows = table_rows(markdown, "row − column")
    for i, (row, a) in enumerate(zip(matrix_rows, labels)):
        assert row[0] == f"{i + 1}. {a}"
        for j, b in enumerate(labels):
            assert row[j + 1] == ("·" if a == b else matrix[(a, b)]), (a, b)
    budget = budget_rows(results)
    if budget:
        assert {row[0]: row for row in table_rows(markdown, "run | optimiser steps")} == budget
    selection = selection_rows(results)
    if selection:
        assert table_rows(markdown, "run | setting") == selection
    matched = kl_matched_rows(results)
    if matched:
        assert table_rows(markdown, "sweep") == matched
    if verdicts:
        for row, expected in zip(table_rows(markdown, "claim"), verdicts):
            if expected is not None:
                assert row[2] == expected, row[0]
            else:
                assert row[2].startswith("cannot tell: every seed of")


