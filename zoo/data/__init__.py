"""Data: loading rows, normalising them to examples, tokenising and collating."""
from zoo.data.builtin import BuiltinDataset
from zoo.data.examples import Example

__all__ = ["BuiltinDataset", "Example"]
