"""Threat families: threats that share an attack surface are rated the same way.

The risk factors (:mod:`bastion.threatmodel.risk`) and the bug-bar inputs
(:mod:`bastion.threatmodel.severity`) are adjusted per family: how easy a query-based
attack is depends on who may query, how easy poisoning is on where data comes from.

==============  ============================================  =====================
family          threats                                       bug-bar effect
==============  ============================================  =====================
evasion         ML01, FM1, FM6, FM7                           evasion
query           ML03, ML04, ML05, FM3, FM4, FM5               data disclosure;
                                                              model theft (ML05, FM5)
poisoning       ML02, ML08, FM2, FM10                         tampering
supply_chain    ML06, ML07, ML10, FM9, FM11                   tampering; code execution
                                                              when an artefact runs code
                                                              on load (ML06, FM9, FM11)
provider        FM8                                           data disclosure
output          ML09                                          tampering
unintentional   FM12-FM17                                     degradation
==============  ============================================  =====================

Examples
--------
>>> FAMILY["FM7"], FAMILY["ML05"]
('evasion', 'query')
>>> sorted(k for k, v in FAMILY.items() if v == "output")
['ML09']
"""

from __future__ import annotations

from typing import Literal

from bastion.catalog.severity import Effect

__all__ = ["DETECTION_CONTROLS", "EFFECTS", "FAMILY", "Family"]

Family = Literal[
    "evasion", "query", "poisoning", "supply_chain", "provider", "output", "unintentional"
]

FAMILY: dict[str, Family] = {
    "ML01": "evasion",
    "FM1": "evasion",
    "FM6": "evasion",
    "FM7": "evasion",
    "ML03": "query",
    "ML04": "query",
    "ML05": "query",
    "FM3": "query",
    "FM4": "query",
    "FM5": "query",
    "ML02": "poisoning",
    "ML08": "poisoning",
    "FM2": "poisoning",
    "FM10": "poisoning",
    "ML06": "supply_chain",
    "ML07": "supply_chain",
    "ML10": "supply_chain",
    "FM9": "supply_chain",
    "FM11": "supply_chain",
    "FM8": "provider",
    "ML09": "output",
    **{f"FM{n}": "unintentional" for n in range(12, 18)},
}

#: The bug-bar effect of each threat when it is realised.
EFFECTS: dict[str, Effect] = {
    **{tid: Effect.EVASION for tid, fam in FAMILY.items() if fam == "evasion"},
    **{tid: Effect.DATA_DISCLOSURE for tid in ("ML03", "ML04", "FM3", "FM4", "FM8")},
    **{tid: Effect.MODEL_THEFT for tid in ("ML05", "FM5")},
    **{tid: Effect.TAMPERING for tid, fam in FAMILY.items() if fam == "poisoning"},
    **{tid: Effect.TAMPERING for tid, fam in FAMILY.items() if fam == "supply_chain"},
    "ML09": Effect.TAMPERING,
    **{tid: Effect.DEGRADATION for tid, fam in FAMILY.items() if fam == "unintentional"},
}

#: Threats whose worst case is code execution when an artefact runs code on load.
CODE_EXECUTION_THREATS = ("ML06", "FM9", "FM11")

#: Mitigations that make an attack of each family easier to notice when in place.
DETECTION_CONTROLS: dict[Family, tuple[str, ...]] = {
    "evasion": ("AML.M0015",),
    "query": ("AML.M0019", "AML.M0015"),
    "poisoning": ("AML.M0008", "AML.M0007"),
    "supply_chain": ("AML.M0014", "AML.M0016"),
    "provider": ("AML.M0008",),
    "output": ("AML.M0013",),
    "unintentional": ("AML.M0008",),
}
