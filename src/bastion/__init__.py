"""Bastion: detect, react to and repair threats to machine-learning systems."""

__version__ = "0.1.0"
