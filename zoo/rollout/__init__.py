"""Rollouts: sampling responses from a policy and turning them into training batches.

* :mod:`zoo.rollout.settings`: :class:`~zoo.rollout.settings.Sampling`, the sampling settings every
  caller uses (online algorithms' ``Args``, ``zoo pairs``, the generation suite);
* :mod:`zoo.rollout.sampler`: :class:`~zoo.rollout.sampler.Sampler`, which samples from a model
  and alone detects stop tokens; best-of-n;
* :mod:`zoo.rollout.decoding`: the batched decoding loop (prefill, KV cache) the sampler runs;
* :mod:`zoo.rollout.batches`: :class:`~zoo.rollout.batches.Generation`, the samples, and the
  functions that turn them into training batches (no transformers needed).

``zoo.rollout`` is the front module online algorithms and generating suites import from:
:class:`Sampling` (inherited by their ``Args``), :class:`Sampler`, and the helpers that turn a
:class:`Generation` into training batches. The sampler (transformers) is imported on first use.
"""
from zoo.lazy import lazy_exports
from zoo.rollout.settings import Sampling

__getattr__, __dir__ = lazy_exports(globals(), {
    "zoo.rollout.sampler": ("Sampler",),
    "zoo.rollout.batches": ("Generation", "encode_prompts", "generation_batch", "join_generations", "right_padded",
                            "select_best", "take_rows"),
})

__all__ = ["Generation", "Sampler", "Sampling", "encode_prompts", "generation_batch", "join_generations",
           "right_padded", "select_best", "take_rows"]
