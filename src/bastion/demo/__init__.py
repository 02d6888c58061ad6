"""Built-in demo models, trained in seconds and deterministically, for ``bastion demo``.

Two models cover both halves of Bastion's world:

``digits_cnn``
    A small convolutional network on scikit-learn's 8x8 digits (white-box torch
    target, ~97% test accuracy), see :func:`train_digits_cnn`.
``breast_cancer``
    A scikit-learn pipeline (standardisation + logistic regression) on the breast
    cancer measurements (~97% test accuracy), see :func:`train_breast_cancer_model`.

:func:`save_demo_models` writes them as TorchScript and skops files plus a manifest
that :func:`load_demo_models` (or :func:`~bastion.targets.loading.load_target`) reads
back.

Examples
--------
>>> from bastion.demo import DEMO_MODELS
>>> sorted(DEMO_MODELS)
['breast_cancer', 'digits_cnn']
"""

from bastion.demo.models import (
    DEMO_MODELS,
    MANIFEST,
    digits_cnn,
    load_demo_models,
    save_demo_models,
    train_breast_cancer_model,
    train_digits_cnn,
)

__all__ = [
    "DEMO_MODELS",
    "MANIFEST",
    "digits_cnn",
    "load_demo_models",
    "save_demo_models",
    "train_breast_cancer_model",
    "train_digits_cnn",
]
