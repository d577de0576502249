"""``preference``: pairwise accuracy and reward margin on held-out preference pairs.

Each pair (x, y_w, y_l) gets a score per response, and the margin ``m = r(x, y_w) − r(x, y_l)``:

* ``scorer: reward``: the reward source's score (``--reward-model`` or ``--reward-function``);
* ``scorer: implicit``: DPO's implicit reward ``r = β (log π(y|x) − log π_ref(y|x))`` of the
  policy against ``--reference``;
* ``scorer: logprob``: the policy's own sequence log-probability ``r = log π(y|x)``;
* ``scorer: auto`` (default): ``reward`` when a reward source is given, else ``implicit`` when
  a reference is given, else ``logprob``.

Metrics: ``accuracy`` (share of pairs with ``m > 0``, a tie (``|m| ≤ 1e-5``, :mod:`zoo.losses.accuracy`)
counting one half, so a policy equal to its reference scores 0.5 rather than 0), ``margin`` (mean m), ``chosen`` and ``rejected``
(mean scores), each ± its standard error. Pairs come from the ``data`` option (a file, a
directory or a hub data set; TRL columns or Anthropic HH dialogues), else
``DATA_DIR/hh-rlhf/*test*.jsonl.gz`` with ``--data-dir``, else the Hub's ``Anthropic/hh-rlhf``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported where it runs, so that loading this module stays cheap
    import torch

from zoo import ConfigError, DataError, hookimpl
from zoo.eval import (EvalContext, Suite, SuiteOptions, SuiteResult, batches, inference, mean_metric, read_examples,
                      resolve_source, with_tokenizer)
from zoo.losses import pair_accuracy


@dataclass
class PreferenceOptions(SuiteOptions):
    #: A file, directory or hub data set of pairs (default: see the module docstring).
    data: str | None = None
    split: str = "test"
    scorer: Literal["auto", "reward", "implicit", "logprob"] = "auto"
    #: β of the implicit reward.
    beta: float = 0.1
    max_length: int = 512
    max_prompt_length: int = 256
    #: ``skip`` leaves malformed pairs (e.g. chosen == rejected) out, counted in the results.
    on_bad_rows: Literal["error", "skip"] = "error"

    def validate(self) -> None:
        self.require(self.beta > 0, "beta", "must be > 0")
        self.require(0 < self.max_prompt_length < self.max_length, "max_prompt_length",
                     "must be > 0 and smaller than max_length")


class Preference(Suite):
    name = "preference"
    description = "pairwise accuracy and margin on held-out preference pairs (reward model or DPO implicit reward)"
    Options = PreferenceOptions

    def load(self, data_dir=None, limit=None) -> None:
        o = self.options
        self.spec = resolve_source(o.data, data_dir, o.split)
        try:
            self.examples, self.source = read_examples(self.spec, o.split, "pairwise", limit,
                                                       skip_bad=o.on_bad_rows == "skip")
            self.skipped = list(self.examples.skipped)
        except DataError as exc:
            if exc.row is None:  # the file itself: skipping rows cannot help
                raise
            raise DataError(f"{exc} (pass --option preference.on_bad_rows=skip to leave such rows out)") from None

    def uses_model(self, reward, reference) -> bool:
        return not (self.options.scorer == "reward" or (self.options.scorer == "auto" and reward is not None))

    def size(self) -> int:
        return len(self.examples)

    def scorer(self, context: EvalContext) -> str:
        chosen = self.options.scorer
        if chosen == "auto":
            return "reward" if context.reward is not None else "implicit" if context.reference is not None else "logprob"
        if chosen == "reward" and context.reward is None:
            raise ConfigError("option preference.scorer = 'reward' needs --reward-model or --reward-function")
        if chosen == "implicit" and context.reference is None:
            raise ConfigError("option preference.scorer = 'implicit' needs --reference")
        return chosen

    def run(self, model, tokenizer, context: EvalContext) -> SuiteResult:
        scorer = self.scorer(context)
        # Message-list pairs are rendered with the chat template now that the tokenizer exists.
        self.examples = with_tokenizer(self.examples, tokenizer if scorer != "reward" else
                                       getattr(context.reward, "tokenizer", None) or tokenizer)
        if scorer == "reward":
            scores = self._reward_scores(context)
        else:
            if model is None:
                raise ConfigError(f"option preference.scorer = {scorer!r} needs a model")
            scores = self._logprob_scores(model, tokenizer, context, scorer)
        chosen, rejected = scores[:, 0].tolist(), scores[:, 1].tolist()
        margins = [c - r for c, r in zip(chosen, rejected)]
        accuracy = [pair_accuracy(m) for m in margins]
        samples = [{"id": f"row {e.row}", "chosen": c, "rejected": r, "margin": m, "accuracy": a}
                   for e, c, r, m, a in zip(self.examples, chosen, rejected, margins, accuracy)]
        metrics = {"accuracy": mean_metric(accuracy), "margin": mean_metric(margins),
                   "chosen": mean_metric(chosen), "rejected": mean_metric(rejected)}
        return SuiteResult(metrics, samples, {"items": len(self.examples), "scorer": scorer,
                                              "skipped_rows": len(getattr(self, "skipped", [])),
                                              "beta": self.options.beta if scorer == "implicit" else None})

    def _reward_scores(self, context: EvalContext) -> torch.Tensor:
        import torch

        out = []
        for start in range(0, len(self.examples), context.batch_size):
            chunk = self.examples[start: start + context.batch_size]
            prompts = [e.prompt for e in chunk]
            chosen = context.reward.score(prompts, [e.responses[0] for e in chunk])
            rejected = context.reward.score(prompts, [e.responses[1] for e in chunk])
            out.append(torch.stack([chosen.float().cpu(), rejected.float().cpu()], dim=1))
            if context.progress is not None:
                context.progress(len(chunk))
        return torch.cat(out)

    def _logprob_scores(self, model, tokenizer, context: EvalContext, scorer: str) -> torch.Tensor:
        import torch

        from zoo import batch_logprobs

        o = self.options
        out = []
        with inference(model) as device:
            for chunk, batch in batches(self.examples, tokenizer, batch_size=context.batch_size,
                                        max_length=o.max_length, max_prompt_length=o.max_prompt_length):
                batch = batch.to(device)
                policy = batch_logprobs(model, batch).sum
                if scorer == "implicit":
                    if context.reference is model:  # the reference itself (e.g. the bench's unaligned row): r = 0
                        reference = policy
                    else:
                        with inference(context.reference):
                            reference = batch_logprobs(context.reference, batch).sum
                    policy = o.beta * (policy - reference)
                out.append(policy.float().cpu())
                if context.progress is not None:
                    context.progress(len(chunk))
        return torch.cat(out)


@hookimpl
def zoo_register_suites(register):
    register(Preference)
