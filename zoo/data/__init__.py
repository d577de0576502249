"""Data: loading rows, normalising them to examples, tokenising and collating.

``zoo.data`` is also a front module for plugins: what a data set, a task or a suite needs to
register a built-in data set or to read rows the way a run reads them:

* :class:`BuiltinDataset`: a named, seeded generator of rows (``zoo_register_datasets``);
* :func:`read_rows`: rows from ``builtin:NAME``, a local file or folder, or a hub data set;
* :func:`normalise` and :class:`Example`: one row in any of the accepted column conventions as
  the example a collator takes.
"""
from zoo.data.builtin import BuiltinDataset
from zoo.data.examples import Example, normalise
from zoo.data.sources import read_rows

__all__ = ["BuiltinDataset", "Example", "normalise", "read_rows"]
