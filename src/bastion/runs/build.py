"""Turn a validated config into :class:`~bastion.runs.jobs.AssessmentJob` objects.

Loads each target's dataset and model, fills the input spec from the config and
the data, and queries the model once on two test rows so that a dataset that does
not fit the model fails here with one sentence instead of deep inside a probe.
"""

from __future__ import annotations

from typing import Any

from bastion.data.dataset import Dataset
from bastion.data.demo import DEMO_DATASETS
from bastion.data.loaders import load_dataset
from bastion.errors import BastionError, DataError
from bastion.runs.config import AssessmentConfig, DataConfig, TargetConfig
from bastion.runs.jobs import AssessmentJob
from bastion.targets.loading import infer_input_spec, load_target
from bastion.targets.spec import InputSpec

__all__ = ["build_jobs", "load_data"]


def load_data(data: DataConfig, config: AssessmentConfig) -> Dataset:
    """The dataset a :class:`DataConfig` describes."""
    if data.builtin is not None:
        return DEMO_DATASETS[data.builtin](config.seed)
    assert data.path is not None
    options: dict[str, Any] = {"test_size": data.test_size, "seed": config.seed}
    if data.label is not None:
        options["label"] = data.label
    return load_dataset(config.resolve(data.path), **options)


def _input_spec(target: TargetConfig, data: Dataset) -> InputSpec:
    inferred = infer_input_spec(data.x_test, feature_names=data.feature_names)
    if target.input is None:
        return inferred
    given = target.input.model_dump(exclude_unset=True)
    merged = {**inferred.model_dump(), **given}
    if "shape" in given:
        merged["shape"] = tuple(given["shape"])
    try:
        return InputSpec(**merged)
    except ValueError as err:
        raise DataError(
            f"Target {target.display_name!r}: the 'input' section is invalid: {err}"
        ) from None


def _smoke_test(job: AssessmentJob) -> None:
    sample = job.data.x_test[:2]
    try:
        job.target.input_spec.check(sample, what=f"dataset {job.data.name!r}")
        job.target.predict(sample)
    except BastionError as err:
        raise type(err)(
            f"Target {job.target.name!r} cannot score dataset {job.data.name!r}: {err}"
        ) from None


def build_jobs(config: AssessmentConfig) -> list[AssessmentJob]:
    """Load every target in ``config`` with its data, checking that they fit."""
    jobs = []
    for target_config in config.targets:
        data = load_data(config.data_for(target_config), config)
        classes = target_config.classes or list(data.classes)
        if len(classes) != data.n_classes:
            raise DataError(
                f"Target {target_config.display_name!r} declares {len(classes)} classes but "
                f"dataset {data.name!r} has {data.n_classes}; make them agree."
            )
        source: str = target_config.source
        if target_config.path is not None:
            source = str(config.resolve(target_config.path))
        target = load_target(
            source,
            kind=target_config.kind,
            input_spec=_input_spec(target_config, data),
            classes=classes,
            name=target_config.display_name,
            query_budget=target_config.query_budget,
            options=target_config.options,
        )
        job = AssessmentJob(
            target=target,
            data=data,
            security_decision=target_config.security_decision,
            artifact=target_config.source,
        )
        _smoke_test(job)
        jobs.append(job)
    return jobs
