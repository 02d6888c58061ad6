"""Format handlers of the artifact scanner, one module per family of formats."""
