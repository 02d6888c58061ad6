"""REACT: runtime guards and the pipeline that runs them."""

from bastion.guards.base import Action, Decision, Guard, GuardMeta, GuardRequest, GuardResponse

__all__ = ["Action", "Decision", "Guard", "GuardMeta", "GuardRequest", "GuardResponse"]
