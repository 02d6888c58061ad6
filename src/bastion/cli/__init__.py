"""The ``bastion`` command line: thin Typer commands over the library."""
