"""The ``alertyard`` command line."""
