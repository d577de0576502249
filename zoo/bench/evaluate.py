"""The one evaluation every contender gets, whatever produced it.

For each evaluation prompt, ``samples_per_prompt`` responses are sampled at temperature 1 (from
the policy, or by best-of-n decoding from the SFT model) and scored. Per sample it records:

* ``gold``: the task's gold reward; ``proxy``: the proxy reward model's score; ``judges``: the
  task's further judges (:meth:`zoo.bench.Task.judges`), when it names any;
* ``kl``: log π(y|x) − log π_SFT(y|x) summed over the response tokens. Its mean over samples
  drawn from π is an unbiased estimate of KL(π‖π_SFT) in nats per response. Best-of-n has no
  policy to score; its KL is the analytic log n − (n − 1)/n (Stiennon et al. 2020);
* ``length``: response tokens.

Per model: knowledge-probe accuracy (the task's MMLU-format items through
:func:`zoo.eval.mmlu.score_multiple_choice`, the MMLU code path), the same per item on the
task's held-out probes (facts never seen verbatim, the alignment-tax probe; MMLU-format or cloze items
scored by each choice's log-likelihood), held-out preference accuracy
(the ``preference`` suite with the implicit reward log π − log π_SFT, so the SFT model itself
scores 0.5), and any extra ``zoo.eval`` suites the config lists. Win rates are computed later,
from the per-sample gold rewards of a contender and of the SFT model on the same prompts and seed.

Log-likelihoods are scored in the scorer's ``"batched"`` layout (:data:`SCORER_LAYOUT`), the one
the committed results were computed with; ``zoo eval``'s default ``"blocks"`` agrees with it to
float rounding only, so changing it is a regeneration of every evaluation stage.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.bench.config import EvalConfig
from zoo.forward import batch_logprobs
from zoo.gguf import resolve

#: The log-likelihood scorer's layout in evaluation stages (see the module docstring).
SCORER_LAYOUT = "batched"


@dataclass
class EvalInputs:
    """What every evaluation shares: prompts, probes, held-out pairs, the SFT model, the rewards."""

    prompts: list[str]
    probes: list[dict[str, Any]]
    probe_fewshot: list[dict[str, Any]]
    heldout_pairs: Path
    sft_model: nn.Module
    tokenizer: Any
    gold: Any
    proxy: Any
    config: EvalConfig
    max_new_tokens: int
    #: Knowledge items never seen verbatim in training (the alignment-tax probe).
    heldout_probes: list[dict[str, Any]] = field(default_factory=list)
    #: The task's further judges (name → reward source), scored on every sample beside the gold reward.
    judges: dict[str, Any] = field(default_factory=dict)

    @property
    def repeated_prompts(self) -> list[str]:
        n = self.config.samples_per_prompt
        return [prompt for prompt in self.prompts for _ in range(n)]


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_policy(model_dir: str | Path) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve(str(model_dir))  # a GGUF file (the unaligned start) reads its converted directory
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device()).eval()
    return model, tokenizer


@torch.no_grad()
def sample_and_score(model: nn.Module, inputs: EvalInputs, seed: int) -> dict[str, list[float] | list[str]]:
    """Samples of ``model`` on the evaluation prompts with their gold, proxy, KL and length."""
    from zoo.rollout.batches import encode_prompts, generation_batch
    from zoo.rollout.sampler import Sampler
    from zoo.progress import track

    c = inputs.config
    sampler = Sampler(model, inputs.tokenizer)
    pad = inputs.tokenizer.pad_token_id
    out: dict[str, list] = {"texts": [], "kl": [], "length": []}
    for start in track(range(0, len(inputs.prompts), c.batch_size), "sampling and scoring", unit="batches"):
        chunk = inputs.prompts[start: start + c.batch_size]
        ids, mask = encode_prompts(inputs.tokenizer, chunk)
        generation = sampler(ids, mask, max_new_tokens=inputs.max_new_tokens, temperature=c.temperature,
                             samples_per_prompt=c.samples_per_prompt, seed=seed * 1_000_003 + start)
        batch = generation_batch(generation, chunk, pad_id=pad).to(device())
        policy = batch_logprobs(model, batch)
        reference = batch_logprobs(inputs.sft_model, batch)
        out["texts"] += generation.texts
        out["kl"] += (policy.sum - reference.sum)[:, 0].tolist()
        out["length"] += policy.lengths[:, 0].float().tolist()
    return out


def best_of_n_samples(inputs: EvalInputs, n: int, reward: Any, seed: int) -> dict[str, list]:
    """Best-of-n decoding from the SFT model, ``samples_per_prompt`` selections per prompt."""
    from zoo.rollout.sampler import Sampler, best_of_n

    c = inputs.config
    result = best_of_n(Sampler(inputs.sft_model, inputs.tokenizer), reward, inputs.repeated_prompts, n=n,
                       batch_size=max(1, c.batch_size // n), seed=seed * 1_000_003,
                       max_new_tokens=inputs.max_new_tokens, temperature=c.temperature)
    kl = math.log(n) - (n - 1) / n
    lengths = [float(len(inputs.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1) for text in result.texts]
    return {"texts": list(result.texts), "kl": [kl] * len(result.texts), "length": lengths}


def probe_correct(model: nn.Module, inputs: EvalInputs, items: list[dict[str, Any]]) -> list[float] | None:
    """1.0 / 0.0 per knowledge item, or None when probes are off or absent. MMLU-format items go
    through the MMLU code path; cloze items (with a ``context``) are scored by the log-likelihood
    of each choice as the context's continuation (``acc``, first choice on ties)."""
    from zoo.eval.choice import first_argmax
    from zoo.eval.loglik import loglikelihoods
    from zoo.eval.mmlu import score_multiple_choice

    if not inputs.config.probes or not items:
        return None
    if all("context" in item for item in items):
        pairs = [(item["context"], " " + choice) for item in items for choice in item["choices"]]
        scores = iter(loglikelihoods(model, inputs.tokenizer, pairs, batch_size=inputs.config.batch_size,
                                     layout=SCORER_LAYOUT))
        return [float(first_argmax([next(scores)[0] for _ in item["choices"]]) == item["answer"]) for item in items]
    if any("context" in item for item in items):
        raise ValueError("a probe list mixes cloze items (with a 'context') and MMLU-format items")
    records = score_multiple_choice(model, inputs.tokenizer, items, inputs.probe_fewshot,
                                    num_fewshot=len(inputs.probe_fewshot), batch_size=inputs.config.batch_size,
                                    layout=SCORER_LAYOUT)
    return [float(r["correct"]) for r in records]


def probe_accuracy(model: nn.Module, inputs: EvalInputs) -> float | None:
    correct = probe_correct(model, inputs, inputs.probes)
    return None if correct is None else sum(correct) / len(correct)


def preference_accuracy(model: nn.Module, inputs: EvalInputs) -> float | None:
    from zoo.eval import evaluate

    if not inputs.heldout_pairs.exists() or not inputs.heldout_pairs.read_text().strip():
        return None
    results = evaluate(model, inputs.tokenizer, ["preference"], reference=inputs.sft_model,
                       batch_size=inputs.config.batch_size,
                       options={"preference": {"data": str(inputs.heldout_pairs), "scorer": "implicit"}})
    return float(results["preference"]["accuracy"]["value"])


def suite_metrics(model: nn.Module, inputs: EvalInputs, seed: int) -> dict[str, dict[str, Any]]:
    from zoo.eval import evaluate

    c = inputs.config
    if not c.suites:
        return {}
    options: dict[str, dict[str, Any]] = {}
    for key, value in c.suite_options.items():
        suite, _, name = key.partition(".")
        options.setdefault(suite, {})[name] = value
    return evaluate(model, inputs.tokenizer, c.suites, data_dir=c.data_dir, limit=c.suite_limit,
                    batch_size=c.batch_size, reference=inputs.sft_model, options=options, seed=seed,
                    layout=SCORER_LAYOUT)


def evaluate_model(model: nn.Module | None, inputs: EvalInputs, seed: int, *, best_of: int | None = None,
                   best_of_reward: Any = None, full: bool = True) -> dict[str, Any]:
    """The evaluation record of one contender and seed (``model`` None: the SFT model).

    ``full`` False (the validation split, read by hyperparameter selection only) scores the
    samples and skips the model-level measures (probes, preference accuracy, suites).
    """
    start = time.perf_counter()
    policy = inputs.sft_model if model is None else model
    if best_of is not None:
        samples = best_of_n_samples(inputs, best_of, best_of_reward, seed)
    else:
        samples = sample_and_score(policy, inputs, seed)
    prompts = inputs.repeated_prompts
    gold = inputs.gold.score(prompts, samples["texts"]).tolist()
    record = {
        "gold": gold,
        # a task without a gold reward is judged by the proxy itself: one scoring pass
        "proxy": gold if inputs.proxy is inputs.gold else inputs.proxy.score(prompts, samples["texts"]).tolist(),
        "kl": samples["kl"], "length": samples["length"],
        "kl_kind": "analytic best-of-n bound" if best_of is not None else "sampled estimate",
        "probe_accuracy": probe_accuracy(policy, inputs) if full else None,
        "heldout_probe_correct": probe_correct(policy, inputs, inputs.heldout_probes) if full else None,
        "preference_accuracy": preference_accuracy(policy, inputs) if full else None,
        "suites": suite_metrics(policy, inputs, seed) if full else {},
        "examples": [{"prompt": p, "response": t} for p, t in zip(prompts[:6], samples["texts"][:6])],
    }
    if inputs.judges:
        record["judges"] = {name: judge.score(prompts, samples["texts"]).tolist()
                            for name, judge in inputs.judges.items()}
    record["eval_seconds"] = time.perf_counter() - start
    return record


def reward_model_accuracy(model_dir: Path, heldout_pairs: Path) -> float | None:
    """Accuracy of a saved reward model on the noise-free held-out pairs (the ``preference`` suite)."""
    from zoo.config import RewardConfig
    from zoo.eval import evaluate
    from zoo.rewards.loading import load_reward_source

    if not heldout_pairs.exists() or not heldout_pairs.read_text().strip():
        return None
    source = load_reward_source(RewardConfig(model=str(model_dir))).to(device())
    results = evaluate(None, source.tokenizer, ["preference"], reward=source,
                       options={"preference": {"data": str(heldout_pairs), "scorer": "reward"}})
    return float(results["preference"]["accuracy"]["value"])
