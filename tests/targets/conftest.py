"""Fixtures shared by the adapter tests: small data, small models, files on disk."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from bastion.targets import InputSpec


def small_cnn(n_classes: int = 3) -> torch.nn.Sequential:
    """A tiny Sequential CNN on (1, 4, 4) inputs with a named embedding stage."""
    return torch.nn.Sequential(
        OrderedDict(
            features=torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten()
            ),
            embedding=torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU()),
            classifier=torch.nn.Linear(8, n_classes),
        )
    )


IMAGE_SPEC = InputSpec(shape=(1, 4, 4), lower=0.0, upper=1.0)
CLASSES3 = ["a", "b", "c"]


@pytest.fixture()
def images() -> np.ndarray:
    return np.random.default_rng(0).random((10, 1, 4, 4)).astype(np.float32)


@pytest.fixture()
def cnn() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return small_cnn().eval()


@pytest.fixture(scope="session")
def torchscript_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(1)
    module = small_cnn().eval()
    path = tmp_path_factory.mktemp("ts") / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path, module


@pytest.fixture(scope="session")
def export_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(2)
    module = small_cnn().eval()
    example = (torch.rand(2, 1, 4, 4),)
    program = torch.export.export(module, example, dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path_factory.mktemp("export") / "model.pt2"
    torch.export.save(program, path)
    return path, module


@pytest.fixture(scope="session")
def cancer() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return (
        bunch.data.astype(np.float32),
        bunch.target.astype(np.int64),
        [str(n) for n in bunch.feature_names],
    )


def tabular_spec(x: np.ndarray, names: list[str] | None = None) -> InputSpec:
    return InputSpec(
        shape=(x.shape[1],),
        lower=[float(v) for v in x.min(axis=0)],
        upper=[float(v) for v in x.max(axis=0)],
        feature_names=names,
    )
