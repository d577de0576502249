"""Evaluation: suites (plugins registered through ``zoo_register_suites``) run on any model.

    from zoo.eval import evaluate
    results = evaluate(model, tokenizer, ["mmlu", "arc_easy"], data_dir="data", limit=20)
    results["mmlu"]["acc"]  # {"value": ..., "stderr": ..., "n": ..., "ci95": [...]}

``zoo eval`` is the command-line front end; :class:`zoo.eval.callback.SuiteEvalCallback` runs
suites during training.

This package is the front module of evaluation: a suite plugin imports what it needs from
``zoo.eval`` only (the multiple-choice base class, file readers, the log-likelihood scorer,
metric helpers), never from its modules.
"""
from zoo.eval.choice import ChoiceItem, MultipleChoiceSuite
from zoo.eval.files import Line, load_hub, local_file, local_root, read_json_list, read_jsonl
from zoo.eval.heldout import batches, pad_id, read_examples, resolve_source, with_tokenizer
from zoo.eval.loglik import inference
from zoo.eval.mmlu import (CATEGORIES, check_subjects, description, format_question, load_split, mmlu_metrics,
                           score_multiple_choice)
from zoo.eval.results import Metric, SuiteResult, mean_metric, ratio_metric
from zoo.eval.runner import (check_output_dir, check_settings, evaluate, make_suites, run_header, run_suites,
                             write_outputs)
from zoo.eval.suite import EvalContext, Suite, SuiteOptions

__all__ = [
    "CATEGORIES", "ChoiceItem", "EvalContext", "Line", "Metric", "MultipleChoiceSuite", "Suite", "SuiteOptions",
    "SuiteResult", "batches", "check_output_dir", "check_settings", "check_subjects", "description", "evaluate",
    "format_question",
    "inference", "load_hub", "load_split", "local_file", "local_root", "make_suites", "mean_metric", "mmlu_metrics",
    "pad_id", "ratio_metric", "read_examples", "read_json_list", "read_jsonl", "resolve_source", "run_header",
    "run_suites", "score_multiple_choice", "with_tokenizer", "write_outputs",
]
