"""The built-in demo: small models trained on the bundled demo datasets.

``bastion demo`` trains a CNN on the 8×8 digits and a scikit-learn pipeline on the
breast-cancer data (both in seconds on a laptop CPU) and assesses them with every
probe that applies.
"""

from __future__ import annotations

from bastion.data.demo import load_breast_cancer_dataset, load_digits_dataset
from bastion.demo import train_breast_cancer_model, train_digits_cnn
from bastion.probes.context import NullProgress, ProgressFactory
from bastion.runs.jobs import AssessmentJob

__all__ = ["DEMO_FINGERPRINT_PREFIX", "demo_jobs"]

DEMO_FINGERPRINT_PREFIX = "demo"


def demo_jobs(seed: int = 0, *, progress: ProgressFactory = NullProgress) -> list[AssessmentJob]:
    """Train the demo models and pair them with their datasets."""
    with progress(total=2, description="Training demo models") as bar:
        digits = load_digits_dataset(seed)
        cnn = train_digits_cnn(digits, seed=seed)
        bar.advance()
        cancer = load_breast_cancer_dataset(seed)
        pipeline = train_breast_cancer_model(cancer, seed=seed)
        bar.advance()
    return [
        AssessmentJob(
            cnn,
            digits,
            description="Small CNN on scikit-learn's 8x8 digits (inputs in [0, 1]).",
        ),
        AssessmentJob(
            pipeline,
            cancer,
            description="Scaler + logistic regression on the breast-cancer data (raw features).",
        ),
    ]
