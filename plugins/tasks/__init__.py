"""Built-in benchmark tasks (``zoo_register_tasks``) for ``zoo bench``."""
