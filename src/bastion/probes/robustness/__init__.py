"""Robustness probes: how a model's accuracy holds up when its inputs change.

``robustness.noise`` measures accuracy under random noise of increasing strength, a
baseline for common corruptions rather than an attack.
"""
