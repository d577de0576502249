"""Reward sources: programmatic reward functions and learned reward models, used interchangeably.

A run's ``reward`` config selects one:

* ``reward: {function: NAME, args: {...}}``: a :class:`RewardFunction` registered through the
  ``zoo_register_rewards`` hook; ``args`` are passed to it as keyword arguments.
* ``reward: {model: PATH, args: {...}}``: a reward model saved by ``zoo train`` with
  ``algorithm: reward`` (or any ``AutoModelForSequenceClassification`` with one label). Its
  ``args``: ``normalize`` (default true: subtract the training-data mean score stored with the
  model), ``batch_size`` (32), ``max_length`` (512 tokens), ``max_prompt_length`` and
  ``prompt_truncation`` (:mod:`zoo.rewards.model`).

Both give a :class:`RewardSource`: ``source.score(prompts, responses)`` returns a float32 ``[N]``
tensor, one reward per (prompt, response) pair.

A learned reward model scores the token after which nothing but padding follows (the EOS of
``prompt + response + EOS``), exactly as ``AutoModelForSequenceClassification`` pools, so the
scores seen during reward-model training and when it is used as a reward are the same numbers.

The package has one module per job, and imports none of them itself:

* :mod:`zoo.rewards.sources`: :class:`RewardFunction` (what plugins register), :class:`RewardSource`
  (what online algorithms receive as ``ctx.reward``) and :class:`FunctionReward`;
* :mod:`zoo.rewards.model`: learned reward models (:class:`ModelReward`) and the score statistics
  stored with a trained one;
* :mod:`zoo.rewards.loading`: :func:`load_reward_source`, the source a ``reward`` config section
  selects (a registered function found by name, or a model directory).
"""
