"""An :class:`AssessmentJob` is one target with the dataset it is assessed with."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.data.dataset import Dataset
from bastion.findings.run import DatasetSummary, TargetSummary
from bastion.targets.base import Target

__all__ = ["AssessmentJob"]


@dataclass
class AssessmentJob:
    """A target, its data, and what the run should know about its use.

    Parameters
    ----------
    target : Target
    data : Dataset
    security_decision : bool
        The model makes a security decision (severity rules weigh evasion higher).
    artifact : str or None
        The model file or URL, for report locations.
    """

    target: Target
    data: Dataset
    security_decision: bool = False
    artifact: str | None = None
    description: str = ""

    def target_summary(self) -> TargetSummary:
        """How the target appears in the run record."""
        d = self.target.describe()
        return TargetSummary(
            name=self.target.name,
            kind=self.target.kind,
            dataset=self.data.name,
            classes=list(self.target.classes),
            input_shape=list(self.target.input_spec.shape),
            capabilities=list(d["capabilities"]),
            query_budget=self.target.budget.limit,
            security_decision=self.security_decision,
            description=self.description,
        )

    def dataset_summary(self) -> DatasetSummary:
        """How the dataset appears in the run record."""
        return DatasetSummary(
            name=self.data.name,
            n_train=len(self.data.x_train),
            n_test=len(self.data.x_test),
            n_classes=self.data.n_classes,
            row_shape=list(self.data.row_shape),
            description=self.data.description,
        )
