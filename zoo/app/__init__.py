"""The applications on top of the core that are small enough for one module each:

* :mod:`zoo.app.pairs`: preference data from samples (``zoo pairs``);
* :mod:`zoo.app.scaffold`: a new plugin distribution from templates (``zoo plugins new``);
* :mod:`zoo.app.config_reference`: ``docs/config-reference.md`` from the config dataclasses.
"""
