"""REPAIR: hardening steps, each naming the probes that verify it."""

from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult

__all__ = ["Remedy", "RemedyMeta", "RemedyResult"]
