"""The package's version: recorded in run directories, evaluation results and benchmark stages."""

__version__ = "0.1.0"
