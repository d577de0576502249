"""``generation``: sample responses to held-out prompts and measure reward, win rate and KL.

For each prompt x, ``samples_per_prompt`` responses y_1..y_n are sampled from the policy π.
Per prompt, then averaged over prompts (each metric ± stderr with a 95% confidence interval,
prompts being the independent units):

* ``reward``: mean reward ``(1/n) Σ_j r(x, y_j)`` (needs ``--reward-model`` or
  ``--reward-function``);
* ``win_rate``: ``(1/n) Σ_j [r(x, y_j) > r(x, b_j)]`` (a tie counts one half) against responses
  ``b_j`` of a baseline model sampled the same way, the ``baseline`` option's model or else
  ``--reference`` (needs a reward and a baseline);
* ``kl``: the Monte-Carlo estimate of KL(π‖π_ref),
  ``(1/n) Σ_j Σ_t [log π(y_jt | x, y_j<t) − log π_ref(y_jt | x, y_j<t)]`` over the sampled
  tokens (EOS included) (needs ``--reference``). It is an unbiased estimate only when the
  samples come from π itself, so it is computed only with ``temperature: 1``, ``top_k: 0``,
  ``top_p: 1``; results.json says when it was skipped.
* ``response_tokens``: mean sampled length.

Prompts come from the ``data`` option, else ``DATA_DIR/hh-rlhf/*test*.jsonl.gz`` with
``--data-dir``, else the Hub's ``Anthropic/hh-rlhf`` (the prompt of each pair).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from zoo import ConfigError, hookimpl
from zoo.eval import (EvalContext, Suite, SuiteOptions, SuiteResult, inference, mean_metric, pad_id, read_examples,
                      resolve_source, with_tokenizer)
from zoo.rollout import Sampling


@dataclass
class GenerationOptions(SuiteOptions, Sampling):
    """The sampling settings (:class:`zoo.rollout.settings.Sampling`) and where the prompts come from."""

    key_prefix: ClassVar[str] = "option generation"
    samples_per_prompt: int = 4
    max_new_tokens: int = 64
    #: A file, directory or hub data set of prompts (default: see the module docstring).
    data: str | None = None
    split: str = "test"
    max_prompt_length: int = 256
    #: Model whose samples the win rate compares against ('tiny', a directory or a hub id);
    #: None: the reference model.
    baseline: str | None = None

    def validate(self) -> None:
        self.check_sampling()
        self.require(self.max_prompt_length >= 1, "max_prompt_length", "must be >= 1")
        self.require(self.temperature > 0, "temperature", "must be > 0 (the suite measures sampled responses)")


def win(policy: float, baseline: float) -> float:
    return 1.0 if policy > baseline else 0.5 if policy == baseline else 0.0


class GenerationSuite(Suite):
    name = "generation"
    description = "mean reward, win rate and KL(π‖π_ref) of sampled responses to held-out prompts"
    Options = GenerationOptions

    def load(self, data_dir=None, limit=None) -> None:
        o = self.options
        self.read, self.source = read_examples(resolve_source(o.data, data_dir, o.split), o.split, "prompt", limit)
        self.prompts = [e.prompt for e in self.read]
        self.rows = [e.row for e in self.read]

    def size(self) -> int:
        return len(self.prompts)

    def _baseline(self, tokenizer, context: EvalContext):
        if self.options.baseline is None:
            return context.reference
        from zoo import ModelConfig, frozen, load_causal_lm

        device = next(context.reference.parameters()).device if context.reference is not None else None
        model = frozen(load_causal_lm(ModelConfig(name=self.options.baseline), tokenizer))
        return model.to(device) if device is not None else model

    def _sample(self, sampler, tokenizer, prompts: list[str], seed: int):
        from zoo.rollout import encode_prompts

        o = self.options
        ids, mask = encode_prompts(tokenizer, prompts, o.max_prompt_length)
        return sampler(ids, mask, o, seed=seed, record_logps=True)  # the KL estimate reads the log-probs

    def run(self, model, tokenizer, context: EvalContext) -> SuiteResult:
        from zoo import sequence_logprobs
        from zoo.rollout import Sampler, right_padded

        o, n = self.options, self.options.samples_per_prompt
        if model is None:
            raise ConfigError("the generation suite needs a model")
        self.prompts = [e.prompt for e in with_tokenizer(self.read, tokenizer)]  # chat prompts: the model's template
        if context.reward is None and context.reference is None:
            raise ConfigError("the generation suite needs a reward (--reward-model or --reward-function) for its "
                              "reward and win rate, or a reference (--reference) for its KL")
        baseline = self._baseline(tokenizer, context) if context.reward is not None else None
        estimate_kl = context.reference is not None and o.untempered
        policy_sampler = Sampler(model, tokenizer)
        baseline_sampler = Sampler(baseline, tokenizer) if baseline is not None else None
        per_prompt: dict[str, list[float]] = {"reward": [], "win_rate": [], "kl": [], "response_tokens": []}
        samples: list[dict[str, Any]] = []
        for start in range(0, len(self.prompts), context.batch_size):
            chunk = self.prompts[start: start + context.batch_size]
            seed = context.seed + start
            repeated = [p for p in chunk for _ in range(n)]
            with inference(model):
                generation = self._sample(policy_sampler, tokenizer, chunk, seed)
            lengths = generation.response_lengths.float().view(len(chunk), n).cpu()
            records = [{"id": f"row {row}", "responses": generation.texts[i * n:(i + 1) * n],
                        "response_tokens": lengths[i].tolist()}
                       for i, row in enumerate(self.rows[start: start + len(chunk)])]
            per_prompt["response_tokens"] += lengths.mean(1).tolist()
            if context.reward is not None:
                rewards = context.reward.score(repeated, generation.texts).float().view(len(chunk), n).cpu()
                per_prompt["reward"] += rewards.mean(1).tolist()
                for record, values in zip(records, rewards.tolist()):
                    record["rewards"] = values
                if baseline_sampler is not None:
                    with inference(baseline):
                        other = self._sample(baseline_sampler, tokenizer, chunk, seed)
                    other_rewards = context.reward.score(repeated, other.texts).float().view(len(chunk), n).cpu()
                    for record, ours, theirs, texts in zip(records, rewards.tolist(), other_rewards.tolist(),
                                                           [other.texts[i * n:(i + 1) * n] for i in range(len(chunk))]):
                        wins = [win(a, b) for a, b in zip(ours, theirs)]
                        per_prompt["win_rate"].append(sum(wins) / n)
                        record.update(baseline_responses=texts, baseline_rewards=theirs, wins=wins)
            if estimate_kl:
                input_ids, attention_mask, loss_mask, token_logps = right_padded(generation,
                                                                                 pad_id=pad_id(tokenizer))
                with inference(context.reference) as device:
                    reference = sequence_logprobs(context.reference, input_ids.to(device), attention_mask.to(device),
                                                  loss_mask.to(device), 1)
                kl = (token_logps.sum(-1).to(device) - reference.sum[:, 0]).float().view(len(chunk), n).cpu()
                per_prompt["kl"] += kl.mean(1).tolist()
                for record, values in zip(records, kl.tolist()):
                    record["kl"] = values
            samples += records
            if context.progress is not None:
                context.progress(len(chunk))
        metrics = {name: mean_metric(values) for name, values in per_prompt.items() if values}
        skipped = {}
        if context.reference is not None and not o.untempered:
            skipped["kl"] = "needs temperature 1, top_k 0 and top_p 1 (samples from the policy itself)"
        if context.reward is not None and baseline is None:
            skipped["win_rate"] = "needs a baseline: the baseline option or --reference"
        if context.reward is None:
            skipped["reward"] = skipped["win_rate"] = "needs --reward-model or --reward-function"
        return SuiteResult(metrics, samples, {"items": len(self.prompts), "skipped_metrics": skipped,
                                              "baseline": o.baseline or ("reference" if baseline is not None else None)})


@hookimpl
def zoo_register_suites(register):
    register(GenerationSuite)
