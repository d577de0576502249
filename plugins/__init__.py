"""Built-in plugins (installed as ``zoo_plugins``), grouped by what they register.

* ``algorithms/``: one module per alignment algorithm;
* ``suites/``: evaluation suites;
* ``tasks/``: benchmark tasks;
* ``datasets/``: built-in data sets (and the reward defined over them);
* ``commands/``: CLI sub-commands, ``train`` and ``plugins`` included.

Every module of these folders is loaded as a plugin named after the module (``dpo``,
``mmlu``, ``train``). They import only the front modules ``zoo``, ``zoo.losses``, ``zoo.rollout``,
``zoo.data``, ``zoo.eval``, ``zoo.bench`` and ``zoo.testing``, as a third-party plugin would (the
commands also ``zoo.app``, the front of what commands need), and no plugin imports another
(``tests/test_public_api.py``).
"""
