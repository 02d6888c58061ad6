"""Shared, cached models for the white-box evasion tests.

Models train once per test session (a few seconds together). Every helper returns a
*fresh* :class:`TorchTarget` around the cached module, so query counts and budgets
never leak between tests. Torch runs on one thread: the models are tiny and extra
threads only fight over a shared two-core machine.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from bastion.data import Dataset
from bastion.data.demo import load_breast_cancer_dataset, load_digits_dataset
from bastion.demo import train_digits_cnn
from bastion.targets import InputSpec
from bastion.targets.torch_target import TorchTarget
from bastion.targets.torch_training import TrainOptions, fit_module


@contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def digits() -> tuple[Dataset, torch.nn.Module]:
    data = load_digits_dataset()
    with one_thread():
        return data, train_digits_cnn(data).module


DIGITS_SPEC = InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)


def digits_target(module: torch.nn.Module | None = None, **kw: Any) -> TorchTarget:
    data, cnn = digits()
    return TorchTarget(
        module if module is not None else cnn,
        input_spec=DIGITS_SPEC,
        classes=list(data.classes),
        name=kw.pop("name", "digits-cnn"),
        **kw,
    )


def digits_batch(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    data, _ = digits()
    return torch.from_numpy(data.x_test[:n].copy()), torch.from_numpy(data.y_test[:n].copy())


class Quantised(torch.nn.Module):
    """Rounds inputs to 4 grey levels before the CNN: zero gradients everywhere."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 3) / 3)


class Noisy(torch.nn.Module):
    """Adds fresh Gaussian noise to every input: randomised outputs."""

    def __init__(self, inner: torch.nn.Module, sigma: float = 0.2) -> None:
        super().__init__()
        self.inner = inner
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x + self.sigma * torch.randn_like(x))


class NaNAfter(torch.nn.Module):
    """Answers normally for clean inputs, NaN once an input leaves the clean grid."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        off_grid = ((x * 16) - torch.round(x * 16)).abs().flatten(1).amax(dim=1) > 1e-4
        return torch.where(off_grid[:, None], torch.full_like(out, float("nan")), out)


@functools.cache
def tabular() -> tuple[Dataset, torch.nn.Module, InputSpec]:
    """Breast cancer data, a standardising MLP and a spec with per-feature bounds."""
    data = load_breast_cancer_dataset()
    x = np.asarray(data.x_train, dtype=np.float32)
    everything = np.concatenate([x, np.asarray(data.x_test, dtype=np.float32)])
    mean, std = torch.from_numpy(x.mean(0)), torch.from_numpy(x.std(0) + 1e-6)

    class Standardise(torch.nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return (v - mean) / std

    with one_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # seeds the initial weights too
        net = torch.nn.Sequential(
            Standardise(), torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )
        fit_module(net, x, data.y_train, seed=0, options=TrainOptions(epochs=30, lr=1e-2))
    names = list(data.feature_names or [])
    spec = InputSpec(
        shape=(30,),
        lower=[float(v) for v in everything.min(0)],
        upper=[float(v) for v in everything.max(0)],
        feature_names=names,
        immutable=names[:5],
    )
    return data, net, spec


def tabular_target(**kw: Any) -> TorchTarget:
    data, net, spec = tabular()
    return TorchTarget(net, input_spec=spec, classes=list(data.classes), name="tabular-mlp", **kw)
