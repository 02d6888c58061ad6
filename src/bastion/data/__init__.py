"""Datasets: specs, loaders (npz, csv) and the built-in demo datasets."""

from bastion.data.dataset import Dataset
from bastion.data.demo import DEMO_DATASETS, load_breast_cancer_dataset, load_digits_dataset
from bastion.data.loaders import load_csv, load_dataset, load_npz

__all__ = [
    "DEMO_DATASETS",
    "Dataset",
    "load_breast_cancer_dataset",
    "load_csv",
    "load_dataset",
    "load_digits_dataset",
    "load_npz",
]
