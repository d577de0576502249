"""Built-in evaluation suites (``zoo_register_suites``): one module per suite or suite family."""
