"""``perplexity``: token-level perplexity of held-out responses (or texts).

For sequences i with response tokens y_i given prompts x_i (the whole text for ``text`` rows;
the chosen response for preference pairs; the EOS counts, as in SFT training):

    nll = Σ_i −log π(y_i | x_i) / Σ_i |y_i|,        perplexity = exp(nll)

``nll``'s standard error treats sequences as the independent units (a ratio estimator, see
:func:`zoo.eval.results.ratio_metric`); perplexity's is ``perplexity · se(nll)`` (delta method).
Texts come from the ``data`` option (a file, directory or hub data set), else
``DATA_DIR/hh-rlhf/*test*.jsonl.gz`` with ``--data-dir``, else the Hub's ``Anthropic/hh-rlhf``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from zoo import ConfigError, hookimpl
from zoo.data import Example
from zoo.eval import (EvalContext, Metric, Suite, SuiteOptions, SuiteResult, batches, inference, ratio_metric,
                      read_examples, resolve_source, with_tokenizer)


@dataclass
class PerplexityOptions(SuiteOptions):
    #: A file, directory or hub data set (default: see the module docstring).
    data: str | None = None
    split: str = "test"
    max_length: int = 512
    max_prompt_length: int = 256

    def validate(self) -> None:
        self.require(0 < self.max_prompt_length < self.max_length, "max_prompt_length",
                     "must be > 0 and smaller than max_length")


class Perplexity(Suite):
    name = "perplexity"
    description = "token-level perplexity of held-out responses given their prompts"
    Options = PerplexityOptions

    def load(self, data_dir=None, limit=None) -> None:
        o = self.options
        self.read, self.source = read_examples(resolve_source(o.data, data_dir, o.split), o.split, None, limit)
        self.examples = self._chosen(self.read)

    @staticmethod
    def _chosen(examples):
        # Pairs contribute their chosen response: the text a good policy should find likely.
        return [Example(e.prompt, e.responses[:1], None, e.row, e.source, prompt_messages=e.prompt_messages)
                for e in examples]

    def size(self) -> int:
        return len(self.examples)

    def run(self, model, tokenizer, context: EvalContext) -> SuiteResult:
        from zoo import batch_logprobs  # the forward pass: torch, only when the suite runs

        if model is None:
            raise ConfigError("the perplexity suite needs a model")
        o = self.options
        self.examples = self._chosen(with_tokenizer(self.read, tokenizer))
        nll, tokens, samples = [], [], []
        with inference(model) as device:
            for chunk, batch in batches(self.examples, tokenizer, batch_size=context.batch_size,
                                        max_length=o.max_length, max_prompt_length=o.max_prompt_length):
                batch = batch.to(device)
                out = batch_logprobs(model, batch)
                for example, total, count in zip(chunk, out.sum[:, 0].tolist(), out.lengths[:, 0].tolist()):
                    nll.append(-total)
                    tokens.append(count)
                    samples.append({"id": f"row {example.row}", "tokens": count, "nll": -total})
                if context.progress is not None:
                    context.progress(len(chunk))
        mean_nll = ratio_metric(nll, tokens)
        stderr = None if mean_nll.stderr is None else math.exp(mean_nll.value) * mean_nll.stderr
        metrics = {"perplexity": Metric(math.exp(mean_nll.value), stderr, mean_nll.n), "nll": mean_nll,
                   "tokens": Metric(float(sum(tokens)), None, len(tokens))}
        return SuiteResult(metrics, samples, {"items": len(self.examples)})


@hookimpl
def zoo_register_suites(register):
    register(Perplexity)
