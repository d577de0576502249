"""Built-in CLI sub-commands (``zoo_register_commands``), ``train`` and ``plugins`` among them."""
