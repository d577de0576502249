"""Rollouts: sampling responses from a policy and turning them into training batches.

* :mod:`zoo.rollout.settings`: :class:`~zoo.rollout.settings.Sampling`, the sampling settings every
  caller uses (online algorithms' ``Args``, ``zoo pairs``, the generation suite);
* :mod:`zoo.rollout.sampler`: :class:`~zoo.rollout.sampler.Sampler`, which samples from a model
  and alone detects stop tokens; best-of-n;
* :mod:`zoo.rollout.decoding`: the batched decoding loop (prefill, KV cache) the sampler runs;
* :mod:`zoo.rollout.batches`: :class:`~zoo.rollout.batches.Generation`, the samples, and the
  functions that turn them into training batches (no transformers needed).
"""
