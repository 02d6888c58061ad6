"""Shared fixtures for the remedy, harden and detector tests: the demo digits CNN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache

import torch

from bastion.data.dataset import Dataset
from bastion.data.demo import load_digits_dataset
from bastion.demo import train_digits_cnn
from bastion.targets.torch_target import TorchTarget


@cache
def digits() -> Dataset:
    """The digits demo data with a 400-row training split (keeps the tests fast)."""
    d = load_digits_dataset(0)
    return replace(d, x_train=d.x_train[:400], y_train=d.y_train[:400])


@cache
def _cnn() -> TorchTarget:
    return train_digits_cnn(load_digits_dataset(0), seed=0)


def digits_cnn() -> TorchTarget:
    """The trained demo CNN (shared; never modify it in a test)."""
    return _cnn()


@cache
def digits_full() -> Dataset:
    """The digits demo data with its full 1,346-row training split."""
    return load_digits_dataset(0)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (small models are faster so on a shared 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
