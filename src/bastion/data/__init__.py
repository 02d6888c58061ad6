"""Datasets: specs, loaders (npz, csv) and the built-in demo datasets."""

from bastion.data.dataset import Dataset

__all__ = ["Dataset"]
