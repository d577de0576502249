"""Built-in algorithm plugins: one module per algorithm (its ``Args``, loss and hookimpl)."""
