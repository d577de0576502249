"""A kit for testing algorithm plugins, in the spirit of pytest's ``pytester``.

Plugin authors import it in their own tests::

    from zoo.testing import assert_algorithm_conforms, make_logprobs

    def test_conforms():
        assert_algorithm_conforms(MyAlgorithm, bad_args=[{"beta": 0.0}, {"beta": float("nan")}])

The pieces:

* :func:`assert_algorithm_conforms` (:mod:`zoo.testing.conformance`): the contract check;
* :func:`fake_batch`, :func:`fake_rows`, :func:`make_logprobs`, :func:`tiny_model_and_tokenizer`
  (:mod:`zoo.testing.fakes`): data and models for hand-computed tests;
* :func:`registered_by`, :func:`plugin_path` (:mod:`zoo.testing.plugins`): what a plugin
  registers, and distributions installed into a folder made visible to the registry.
"""
from zoo.testing.conformance import ConformanceError, ConformanceReport, assert_algorithm_conforms
from zoo.testing.fakes import fake_batch, fake_rows, make_logprobs, tiny_model_and_tokenizer
from zoo.testing.plugins import plugin_path, registered_by

__all__ = [
    "ConformanceError", "ConformanceReport", "assert_algorithm_conforms", "fake_batch", "fake_rows",
    "make_logprobs", "plugin_path", "registered_by", "tiny_model_and_tokenizer",
]
