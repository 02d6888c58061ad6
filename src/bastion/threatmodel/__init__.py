"""Threat modelling: from a description of an ML system to its threats, risks and tests.

A system description (YAML, :mod:`bastion.threatmodel.schema`) says what the model is,
how it is reached, what it returns and decides, where its data comes from, how it keeps
learning, what artefacts it is built from and which ATLAS mitigations are in place.
:func:`analyse` decides, for each OWASP ML Top 10 entry and failure mode FM1-FM17,
whether it applies and why (citing the fields), adjusts the OWASP risk factors to the
system, rates a bug-bar severity, lists the ATLAS mitigations that address it and
whether they are present, and names the installed probes, guards and remedies that test
or implement it. :func:`write_outputs` writes HTML, Markdown and JSON reports;
:func:`emit_assessment` writes the assessment config that runs the matching probes;
:func:`explain` triages a finding's severity by the bug-bar rules.

Examples
--------
>>> from bastion.threatmodel import analyse, minimal_description
>>> tm = analyse(minimal_description())
>>> tm.get("ML01").applies, tm.get("ML01").severity.value
(True, 'important')
>>> tm.get("FM12").reasons[0].text.startswith("model.learning is supervised")
True
"""

from bastion.threatmodel.analysis import analyse
from bastion.threatmodel.emit import EmittedAssessment, assessment_text
from bastion.threatmodel.emit import write as emit_assessment
from bastion.threatmodel.loading import SystemFile, load_description, parse_description_text
from bastion.threatmodel.outputs import FILE_NAMES, FORMATS, write_outputs
from bastion.threatmodel.results import ThreatModel, ThreatResult
from bastion.threatmodel.samples import minimal_description
from bastion.threatmodel.schema import SystemDescription
from bastion.threatmodel.triage import Triage, explain

__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "EmittedAssessment",
    "SystemDescription",
    "SystemFile",
    "ThreatModel",
    "ThreatResult",
    "Triage",
    "analyse",
    "assessment_text",
    "emit_assessment",
    "explain",
    "load_description",
    "minimal_description",
    "parse_description_text",
    "write_outputs",
]
