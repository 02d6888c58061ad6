"""The built-in demo: small models trained on the bundled demo datasets.

``bastion demo`` trains a CNN on the 8×8 digits, a scikit-learn pipeline on the
breast-cancer data and an MLP intrusion detector on synthetic network flows (all in
seconds on a laptop CPU), serves the pipeline as a JSON endpoint on a loopback port the
way a team might deploy it, and assesses all four targets with every probe that applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bastion.data.demo import load_breast_cancer_dataset, load_digits_dataset
from bastion.data.intrusion import load_intrusion_dataset
from bastion.demo import train_breast_cancer_model, train_digits_cnn
from bastion.demo.intrusion import train_intrusion_mlp
from bastion.demo.server import serve_target
from bastion.probes.context import NullProgress, ProgressFactory
from bastion.runs.jobs import AssessmentJob
from bastion.targets.http_target import HttpTarget

__all__ = ["DEMO_FINGERPRINT_PREFIX", "demo_jobs"]

DEMO_FINGERPRINT_PREFIX = "demo"


@contextmanager
def demo_jobs(
    seed: int = 0, *, progress: ProgressFactory = NullProgress
) -> Iterator[list[AssessmentJob]]:
    """Train the demo models, start the demo endpoint, and pair each with its data.

    The endpoint stops when the ``with`` block ends.
    """
    with progress(total=3, description="Training demo models") as bar:
        digits = load_digits_dataset(seed)
        cnn = train_digits_cnn(digits, seed=seed)
        bar.advance()
        cancer = load_breast_cancer_dataset(seed)
        pipeline = train_breast_cancer_model(cancer, seed=seed)
        bar.advance()
        flows = load_intrusion_dataset(seed)
        detector = train_intrusion_mlp(flows, seed=seed)
        bar.advance()
    with serve_target(pipeline) as url:
        endpoint = HttpTarget(
            url,
            input_spec=pipeline.input_spec,
            classes=pipeline.classes,
            name="breast-cancer-api",
            timeout=5.0,
        )
        try:
            yield [
                AssessmentJob(
                    cnn,
                    digits,
                    description="Small CNN on scikit-learn's 8x8 digits (inputs in [0, 1]).",
                ),
                AssessmentJob(
                    pipeline,
                    cancer,
                    description="Scaler + logistic regression on the breast-cancer data "
                    "(raw features).",
                ),
                AssessmentJob(
                    detector,
                    flows,
                    security_decision=True,
                    description="MLP intrusion detector on synthetic network flows; ports and "
                    "protocol are immutable, counts are integers, the protocol is one-hot.",
                ),
                AssessmentJob(
                    endpoint,
                    cancer,
                    artifact=url,
                    description="The same pipeline behind an unauthenticated JSON endpoint "
                    "on a loopback port.",
                ),
            ]
        finally:
            endpoint.close()
