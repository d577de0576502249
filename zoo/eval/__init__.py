"""Evaluation: suites (plugins registered through ``zoo_register_suites``) run on any model.

    from zoo.eval import evaluate
    results = evaluate(model, tokenizer, ["mmlu", "arc_easy"], data_dir="data", limit=20)
    results["mmlu"]["acc"]  # {"value": ..., "stderr": ..., "n": ..., "ci95": [...]}

``zoo eval`` is the command-line front end; :class:`zoo.eval.callback.SuiteEvalCallback` runs
suites during training.
"""
from zoo.eval.results import Metric, SuiteResult
from zoo.eval.runner import evaluate, make_suites, run_suites
from zoo.eval.suite import EvalContext, Suite, SuiteOptions

__all__ = ["EvalContext", "Metric", "Suite", "SuiteOptions", "SuiteResult", "evaluate", "make_suites", "run_suites"]
