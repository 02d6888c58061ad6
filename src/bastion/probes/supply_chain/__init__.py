"""Supply-chain probes: what a model file would do when it is loaded."""
