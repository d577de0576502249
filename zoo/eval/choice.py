"""Multiple-choice suites scored by the log-likelihood of each choice, as lm-evaluation-harness does.

Each choice is scored as the continuation ``" " + choice`` of the item's context. Per item:

* ``acc``: the choice with the highest log-likelihood is the gold one;
* ``acc_norm``: the same after dividing each log-likelihood by the choice's length in characters
  (lm-evaluation-harness's length normalisation, which removes the bias toward short choices).

Ties go to the first choice, as numpy's argmax does. A subclass supplies the items
(:meth:`MultipleChoiceSuite.load_items`) and may replace the per-item scores
(:meth:`MultipleChoiceSuite.item_scores`, e.g. TruthfulQA's MC2).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from zoo.errors import ConfigError
from zoo.eval.loglik import LoglikScorer, make_requests
from zoo.eval.results import SuiteResult, mean_metric
from zoo.eval.suite import EvalContext, Suite


@dataclass
class ChoiceItem:
    """One question: the context, the choice texts and the gold choice (``labels`` mark every
    true choice where several are, as in TruthfulQA's MC2)."""

    id: str
    context: str
    choices: list[str]
    gold: int
    labels: list[int] | None = None


def first_argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


class MultipleChoiceSuite(Suite):
    """A suite of :class:`ChoiceItem` questions; see the module docstring."""

    #: The per-item scores :meth:`item_scores` returns, averaged into the suite's metrics.
    metric_names: ClassVar[tuple[str, ...]] = ("acc", "acc_norm")
    target_delimiter: ClassVar[str] = " "

    def __init__(self, options=None):
        super().__init__(options)
        self.items: list[ChoiceItem] = []

    def load_items(self, data_dir: str | Path | None) -> tuple[list[ChoiceItem], str]:
        """All items and a description of where they came from."""
        raise TypeError(f"suite {self.name!r} does not implement load_items()")

    def load(self, data_dir: str | Path | None = None, limit: int | None = None) -> None:
        items, self.source = self.load_items(data_dir)
        self.items = items[:limit] if limit is not None else items
        if not self.items:
            raise ConfigError(f"suite {self.name!r}: no items in {self.source}")

    def size(self) -> int:
        return sum(len(item.choices) for item in self.items)

    def item_scores(self, item: ChoiceItem, loglikelihoods: list[float]) -> dict[str, float]:
        prediction = first_argmax(loglikelihoods)
        normalised = [ll / len(choice) for ll, choice in zip(loglikelihoods, item.choices)]
        return {"acc": float(prediction == item.gold), "acc_norm": float(first_argmax(normalised) == item.gold)}

    def run(self, model, tokenizer, context: EvalContext) -> SuiteResult:
        requests, spans = [], []
        for item in self.items:
            spans.append((len(requests), len(item.choices)))
            requests += make_requests(tokenizer, item.context, [self.target_delimiter + c for c in item.choices])
        scorer = LoglikScorer(model, tokenizer, batch_size=context.batch_size, share_prefix=context.share_prefix,
                              layout=context.layout,
                              progress=context.progress)
        scores = scorer(requests)
        samples: list[dict[str, Any]] = []
        per_metric: dict[str, list[float]] = {name: [] for name in self.metric_names}
        for item, (start, n) in zip(self.items, spans):
            loglikelihoods = [s for s, _ in scores[start: start + n]]
            values = self.item_scores(item, loglikelihoods)
            for name in self.metric_names:
                per_metric[name].append(values[name])
            samples.append({"id": item.id, "loglikelihoods": loglikelihoods,
                            "is_greedy": [g for _, g in scores[start: start + n]],
                            "prediction": first_argmax(loglikelihoods), "gold": item.gold, **values})
        metrics = {name: mean_metric(values) for name, values in per_metric.items()}
        return SuiteResult(metrics, samples, {"items": len(self.items)})
