"""``mmlu``: 57-subject knowledge benchmark, k-shot (default 5), scored like lm-evaluation-harness.

Few-shot examples are the first k items of each subject's ``dev`` split; questions come from
``test``; ``--limit N`` keeps the first N questions of each subject. Data: the Hub's
``cais/mmlu``, or ``--data-dir DIR`` holding the original release CSVs as
``DIR/mmlu/{dev,test}/SUBJECT_SPLIT.csv``. Metrics: ``acc`` (micro: every question weighs the
same) and ``acc_macro`` (every subject weighs the same), the same per category
(``stem/acc`` ...), ``SUBJECT/acc`` per subject, and the spread of predicted and gold letters
(``predicted_A`` ..., ``gold_A`` ...). See :mod:`zoo.eval.mmlu`.
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo import ConfigError, hookimpl
from zoo.eval import (CATEGORIES, EvalContext, Suite, SuiteOptions, SuiteResult, check_subjects, load_split,
                      mmlu_metrics, score_multiple_choice)


@dataclass
class MMLUOptions(SuiteOptions):
    #: Subjects to run (default: all 57).
    subjects: list[str] | None = None

    def validate(self) -> None:
        try:
            check_subjects(self.subjects)
        except ConfigError as exc:
            self.require(False, "subjects", str(exc))


class MMLU(Suite):
    name = "mmlu"
    description = "MMLU, 57 subjects, k-shot log-likelihood of the answer letter (lm-evaluation-harness format)"
    Options = MMLUOptions
    default_num_fewshot = 5

    def load(self, data_dir=None, limit=None) -> None:
        subjects = check_subjects(self.options.subjects)
        self.test, self.source = load_split(subjects, "test", data_dir, limit)
        self.dev, _ = load_split(subjects, "dev", data_dir)

    def size(self) -> int:
        return 4 * sum(len(items) for items in self.test.values())

    def headline(self, metric: str) -> bool:
        # Overall and per category, and the predicted letters; per subject and gold letters below the table.
        if metric.startswith("gold_"):
            return False
        return "/" not in metric or metric.split("/")[0] in CATEGORIES

    def run(self, model, tokenizer, context: EvalContext) -> SuiteResult:
        k = self.num_fewshot(context.num_fewshot)
        items = [item for subject_items in self.test.values() for item in subject_items]
        records = score_multiple_choice(model, tokenizer, items, self.dev, num_fewshot=k,
                                        batch_size=context.batch_size, share_prefix=context.share_prefix,
                                        layout=context.layout,
                                        progress=context.progress)
        return SuiteResult(mmlu_metrics(records), records,
                           {"items": len(items), "subjects": list(self.test)})


@hookimpl
def zoo_register_suites(register):
    register(MMLU)
