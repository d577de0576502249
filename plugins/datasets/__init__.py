"""Built-in data sets (``zoo_register_datasets``) and the rewards defined over them."""
