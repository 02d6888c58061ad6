"""DETECT: probes = attack(s) + metric + verdict, returning findings."""

from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import NullProgress, ProbeContext

__all__ = ["Cost", "Knowledge", "NullProgress", "Probe", "ProbeContext", "ProbeMeta", "ProbeParams"]
