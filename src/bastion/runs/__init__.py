"""Runs: assessment config, planning, the local executor, resume."""

from bastion.runs.assessment import AssessmentOutcome, AssessmentRequest, run_assessment
from bastion.runs.config import AssessmentConfig, load_config, parse_config_text
from bastion.runs.jobs import AssessmentJob
from bastion.runs.plan import Plan, PlannedProbe, make_plan

__all__ = [
    "AssessmentConfig",
    "AssessmentJob",
    "AssessmentOutcome",
    "AssessmentRequest",
    "Plan",
    "PlannedProbe",
    "load_config",
    "make_plan",
    "parse_config_text",
    "run_assessment",
]
