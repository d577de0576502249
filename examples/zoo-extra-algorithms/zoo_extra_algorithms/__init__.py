"""Extra alignment algorithms for alignment-zoo, each an independent plugin module.

* :mod:`zoo_extra_algorithms.simpo`: SimPO (Meng et al. 2024), reference-free.
* :mod:`zoo_extra_algorithms.kto`: KTO (Ethayarajh et al. 2024), needs a reference.

Both are declared in this distribution's ``pyproject.toml`` under the ``zoo`` entry-point group,
so installing the distribution is all it takes for ``zoo`` to find them.
"""
