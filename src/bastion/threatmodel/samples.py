"""A small, valid system description for examples, doctests and tests.

Examples
--------
>>> desc = minimal_description()
>>> desc.name, desc.access.exposure
('sample-classifier', 'public_api')
>>> minimal_description(access={"exposure": "internal_service", "callers": ["employees"],
...                              "authentication": "user_accounts"}).access.callers
['employees']
"""

from __future__ import annotations

from typing import Any

from bastion.threatmodel.schema import SystemDescription

__all__ = ["minimal_description", "minimal_description_data"]


def minimal_description_data(**sections: Any) -> dict[str, Any]:
    """The plain data of a small public image classifier, with sections replaced.

    Parameters
    ----------
    **sections
        Top-level sections (``access={...}``) that replace the defaults wholesale.
    """
    data: dict[str, Any] = {
        "name": "sample-classifier",
        "summary": "Tags product photos uploaded by customers.",
        "model": {
            "task": "classification",
            "type": "neural_network",
            "framework": "pytorch",
            "origin": "trained_in_house",
        },
        "inputs": {"modality": "image", "supplied_by": ["customers"]},
        "access": {
            "exposure": "public_api",
            "callers": ["registered_users"],
            "authentication": "api_key",
            "rate_limit": {"queries": 1000, "per": "day"},
        },
        "outputs": {"returns": ["label", "scores"], "score_decimals": 2},
        "decisions": {"automation": "fully_automated"},
        "data": {"sources": ["in_house"], "labelling": ["in_house"]},
        "artefacts": [
            {"name": "classifier", "kind": "model", "format": "torchscript", "signed": True}
        ],
        "controls": {"AML.M0004": "yes"},
    }
    data.update(sections)
    return data


def minimal_description(**sections: Any) -> SystemDescription:
    """:func:`minimal_description_data` validated as a :class:`SystemDescription`."""
    return SystemDescription.model_validate(minimal_description_data(**sections))
