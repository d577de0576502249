"""Built-in plugins (installed as ``zoo_plugins``): one module per algorithm, suite or data set.

Every module here is loaded as a plugin; it uses only the public ``zoo`` API, as a
third-party plugin would.
"""
