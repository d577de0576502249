"""Extra alignment algorithms for alignment-zoo, each an independent plugin module.

* :mod:`zoo_extra_algorithms.simpo`: SimPO (Meng et al. 2024), reference-free.

Each is declared in this distribution's ``pyproject.toml`` under the ``zoo`` entry-point group, so
installing the distribution is all it takes for ``zoo`` to find it. (KTO, once an example here, is
built into alignment-zoo: ``algorithm: kto``.)
"""
