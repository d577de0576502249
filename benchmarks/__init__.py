"""Runnable benchmark scripts (installed as ``zoo_benchmarks``); run them as ``python benchmarks/NAME.py``."""
