"""Training, saving and loading the demo models.

Both models take inputs in the datasets' *raw* space and carry their own
preprocessing (the CNN standardises pixels in its first layer, the pipeline scales
features in its first step), so attacks and guards work on the inputs a user sees.

Training is deterministic for a given seed: weight initialisation runs inside a
forked torch RNG, batches are shuffled by a seeded generator, and the logistic
regression's solver is deterministic.

Examples
--------
>>> import numpy as np
>>> from bastion.data.demo import load_breast_cancer_dataset
>>> from bastion.demo import train_breast_cancer_model
>>> data = load_breast_cancer_dataset()
>>> target = train_breast_cancer_model(data)
>>> float((target.predict(data.x_test) == data.y_test).mean()) > 0.95
True
>>> target.input_spec.feature_names[0]
'mean radius'
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.data.dataset import Dataset
from bastion.errors import DataError, TargetError
from bastion.targets.base import Target
from bastion.targets.sklearn_target import SklearnTarget
from bastion.targets.spec import InputSpec
from bastion.targets.torch_target import TorchTarget
from bastion.targets.torch_training import TrainOptions, fit_module

__all__ = [
    "DEMO_MODELS",
    "DIGITS_TRAIN_OPTIONS",
    "MANIFEST",
    "Standardize",
    "digits_cnn",
    "load_demo_models",
    "save_demo_models",
    "train_breast_cancer_model",
    "train_digits_cnn",
]

log = logging.getLogger(__name__)

#: Name of the manifest :func:`save_demo_models` writes next to the model files.
MANIFEST = "demo_models.json"
#: Demo model name -> file name inside the folder.
DEMO_MODELS = {"digits_cnn": "digits_cnn.pt", "breast_cancer": "breast_cancer.skops"}
#: Settings that train the digits CNN to ~97% in about two seconds on two cores.
DIGITS_TRAIN_OPTIONS = TrainOptions(epochs=20, batch_size=64, lr=2e-3)


class Standardize(torch.nn.Module):
    """``(x - mean) / std``, the statistics kept as constants of the module.

    Parameters
    ----------
    mean, std : float
        Statistics of the training pixels (saved with the model, TorchScript included).
    """

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        if not std > 0:
            raise DataError(f"Standardize needs a positive std; got {std!r}.")
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one CPU thread, restoring the previous setting afterwards.

    One thread makes the float reductions, hence the trained weights, identical on
    machines with different core counts, and a model this small trains faster on one
    thread than on threads that fight over shared cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def digits_cnn(mean: float = 0.0, std: float = 1.0, n_classes: int = 10) -> torch.nn.Sequential:
    """The demo architecture: input ``(n, 1, 8, 8)`` in ``[0, 1]`` -> logits ``(n, 10)``.

    Named stages: ``normalize`` -> ``features`` (two 3x3 convolutions, 2x2 max-pool)
    -> ``embedding`` (64 units, the penultimate layer) -> ``classifier``. It is a
    ``Sequential`` so its embeddings can be read even after TorchScript export.
    """
    return torch.nn.Sequential(
        OrderedDict(
            normalize=Standardize(mean, std),
            features=torch.nn.Sequential(
                torch.nn.Conv2d(1, 16, kernel_size=3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(16, 32, kernel_size=3, padding=1),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
                torch.nn.Flatten(),
            ),
            embedding=torch.nn.Sequential(torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU()),
            classifier=torch.nn.Linear(64, n_classes),
        )
    )


def train_digits_cnn(data: Dataset, *, seed: int = 0) -> TorchTarget:
    """Train :func:`digits_cnn` on the digits dataset.

    Parameters
    ----------
    data : Dataset
        Rows ``(1, 8, 8)`` in ``[0, 1]`` with a non-empty training part, as
        :func:`bastion.data.demo.load_digits_dataset` returns.
    seed : int
        Seeds initialisation and shuffling.

    Returns
    -------
    TorchTarget
        Input spec ``(1, 8, 8)`` bounded to ``[0, 1]``; capabilities include
        embeddings (layer ``"embedding"``) and training (a fresh :func:`digits_cnn`
        trained with :data:`DIGITS_TRAIN_OPTIONS`).
    """
    if data.row_shape != (1, 8, 8) or len(data.x_train) == 0:
        raise DataError(
            f"The digits CNN needs training rows of shape (1, 8, 8); dataset {data.name!r} has "
            f"{len(data.x_train)} rows of shape {data.row_shape}."
        )
    x = np.asarray(data.x_train, dtype=np.float32)
    factory = functools.partial(digits_cnn, float(x.mean()), float(x.std()) or 1.0, data.n_classes)
    with _single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = fit_module(factory(), x, data.y_train, seed=seed, options=DIGITS_TRAIN_OPTIONS)
    return TorchTarget(
        module,
        input_spec=InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0),
        classes=list(data.classes),
        name="digits-cnn",
        embedding_layer="embedding",
        module_factory=factory,
        train_options=DIGITS_TRAIN_OPTIONS,
    )


def train_breast_cancer_model(data: Dataset, *, seed: int = 0) -> SklearnTarget:
    """Fit ``StandardScaler`` + ``LogisticRegression`` on the breast cancer dataset.

    Parameters
    ----------
    data : Dataset
        Raw tabular rows ``(n_features,)`` with a non-empty training part, as
        :func:`bastion.data.demo.load_breast_cancer_dataset` returns.
    seed : int
        The estimator's ``random_state`` (the default solver is deterministic anyway).

    Returns
    -------
    SklearnTarget
        Bounds are each feature's observed minimum and maximum over the dataset's
        train and test rows (so every dataset row is a valid input), with the
        dataset's feature names; capabilities include training (clone + fit).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if len(data.row_shape) != 1 or len(data.x_train) == 0:
        raise DataError(
            f"The breast cancer model needs tabular training rows; dataset {data.name!r} has "
            f"{len(data.x_train)} rows of shape {data.row_shape}."
        )
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=1.0, max_iter=2000, random_state=seed)),
        ]
    )
    x_train = np.asarray(data.x_train, dtype=np.float32)
    pipeline.fit(x_train, data.y_train)
    everything = np.concatenate([x_train, np.asarray(data.x_test, dtype=np.float32)])
    spec = InputSpec(
        shape=data.row_shape,
        lower=[float(v) for v in everything.min(axis=0)],
        upper=[float(v) for v in everything.max(axis=0)],
        feature_names=None if data.feature_names is None else list(data.feature_names),
    )
    return SklearnTarget(
        pipeline, input_spec=spec, classes=list(data.classes), name="breast-cancer-logreg"
    )


def save_demo_models(
    folder: str | Path,
    *,
    seed: int = 0,
    digits: Dataset | None = None,
    breast_cancer: Dataset | None = None,
) -> dict[str, Path]:
    """Train both demo models and write them to ``folder``.

    The CNN is saved as TorchScript (``digits_cnn.pt``), the pipeline with skops
    (``breast_cancer.skops``), and :data:`MANIFEST` records each model's input spec,
    classes and adapter options so :func:`load_demo_models` restores equal targets.

    Parameters
    ----------
    folder : str or Path
        Created if missing; existing demo files are overwritten.
    seed : int
        Seed of the dataset splits and of training.
    digits, breast_cancer : Dataset or None
        Datasets to train on; default to the built-in demo datasets.

    Returns
    -------
    dict of str to Path
        Model name (``"digits_cnn"``, ``"breast_cancer"``) -> file written.
    """
    import skops.io

    from bastion.data import demo as demo_data

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cnn = train_digits_cnn(digits or demo_data.load_digits_dataset(seed), seed=seed)
    tabular = train_breast_cancer_model(
        breast_cancer or demo_data.load_breast_cancer_dataset(seed), seed=seed
    )
    paths = {name: out / file for name, file in DEMO_MODELS.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(cnn.module.cpu())
        torch.jit.save(scripted, str(paths["digits_cnn"]))
    skops.io.dump(tabular.estimator, paths["breast_cancer"])
    manifest: dict[str, Any] = {
        "digits_cnn": _entry(cnn, paths["digits_cnn"], {"embedding_layer": "embedding"}),
        "breast_cancer": _entry(tabular, paths["breast_cancer"], {}),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("wrote demo models to %s", out)
    return paths


def _entry(target: Target, path: Path, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "file": path.name,
        "kind": target.kind,
        "name": target.name,
        "classes": list(target.classes),
        "input_spec": target.input_spec.model_dump(mode="json"),
        "options": options,
    }


def load_demo_models(folder: str | Path, *, query_budget: int | None = None) -> dict[str, Target]:
    """Load the models :func:`save_demo_models` wrote, as targets.

    Raises
    ------
    TargetError
        If the folder holds no readable manifest or a model file is missing.
    """
    from bastion.targets.loading import load_target

    root = Path(folder)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TargetError(
            f"No readable {MANIFEST} in {root}; write the demo models with save_demo_models first."
        ) from err
    return {
        key: load_target(
            root / entry["file"],
            kind=entry["kind"],
            input_spec=InputSpec.model_validate(entry["input_spec"]),
            classes=entry["classes"],
            name=entry["name"],
            query_budget=query_budget,
            options=entry.get("options") or None,
        )
        for key, entry in manifest.items()
    }
