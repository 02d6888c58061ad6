"""Contradictions in a description: impossible ones are errors, risky ones are warnings.

:func:`impossible` lists statements no real system can satisfy together ("returns labels
only" yet "scores are rounded to 2 decimals"); the loader refuses such a description.
:func:`design_risks` lists combinations that are possible but are a risk in themselves
(logits returned to anonymous callers, unreviewed user feedback retraining the model);
they become warnings at the top of the report.

Examples
--------
>>> from bastion.threatmodel.samples import minimal_description
>>> desc = minimal_description(outputs={"returns": ["label"], "score_decimals": 2})
>>> [(".".join(p.path), p.message[:40]) for p in impossible(desc)]
[('outputs.score_decimals', 'is set, but the model returns labels onl')]
>>> [w.code for w in design_risks(minimal_description())]
[]
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.threatmodel.facts import CODE_ON_LOAD_FORMATS, Facts
from bastion.threatmodel.results import DesignWarning
from bastion.threatmodel.schema import SystemDescription

__all__ = ["Problem", "design_risks", "impossible"]

_SCORES = ("top_k", "scores", "logits")


@dataclass(frozen=True)
class Problem:
    """An impossible combination, reported at ``path``."""

    path: tuple[str | int, ...]
    message: str


def _outputs(desc: SystemDescription) -> list[Problem]:
    out = desc.outputs
    found = []
    if out.score_decimals is not None and not any(r in _SCORES for r in out.returns):
        found.append(
            Problem(
                ("outputs", "score_decimals"),
                f"is set, but the model returns labels only (outputs.returns: "
                f"{list(out.returns)}), so there are no scores to round; remove it or add "
                "scores, logits or top_k to outputs.returns",
            )
        )
    if out.top_k is not None and "top_k" not in out.returns:
        found.append(
            Problem(("outputs", "top_k"), "is set, but outputs.returns does not list top_k")
        )
    return found


def _model(desc: SystemDescription) -> list[Problem]:
    m = desc.model
    if m.origin in ("fine_tuned", "downloaded") and m.base_model is None:
        return [
            Problem(
                ("model", "origin"),
                f"is {m.origin}, which needs model.base_model (name and source of the "
                "pre-trained model)",
            )
        ]
    if m.origin == "trained_in_house" and m.base_model is not None:
        return [
            Problem(
                ("model", "base_model"),
                "names a pre-trained base, but model.origin is trained_in_house (from "
                "scratch); set origin to fine_tuned or remove base_model",
            )
        ]
    return []


def _feedback(desc: SystemDescription) -> list[Problem]:
    fb = desc.feedback
    found = []
    if fb.online_learning and fb.retraining != "continuous":
        found.append(
            Problem(
                ("feedback", "retraining"),
                f"is {fb.retraining}, but online learning updates the model continuously; "
                "set retraining: continuous",
            )
        )
    if fb.sources and fb.retraining == "never":
        found.append(
            Problem(
                ("feedback", "sources"),
                "says feedback flows into training, but feedback.retraining is never; "
                "set how often the model is retrained or remove the sources",
            )
        )
    if fb.cadence is not None and fb.retraining in ("never", "continuous"):
        found.append(
            Problem(
                ("feedback", "cadence"),
                f"is set, but feedback.retraining is {fb.retraining}; a cadence needs "
                "scheduled or on_demand retraining",
            )
        )
    if fb.reviewed != "none" and not fb.sources and not fb.online_learning:
        found.append(
            Problem(
                ("feedback", "reviewed"),
                f"is {fb.reviewed}, but no feedback flows into training; list "
                "feedback.sources or remove it",
            )
        )
    return found


def _access_and_data(desc: SystemDescription) -> list[Problem]:
    found = []
    if desc.access.authentication == "none" and "registered_users" in desc.access.callers:
        found.append(
            Problem(
                ("access", "authentication"),
                "is none, but access.callers names registered_users, who can only be told "
                "apart by authenticating; choose api_key or user_accounts",
            )
        )
    if desc.data.sensitive_attributes and not desc.data.personal_data:
        found.append(
            Problem(
                ("data", "personal_data"),
                "is false, but data.sensitive_attributes lists attributes of people; set "
                "personal_data: true",
            )
        )
    if not any(a.kind == "model" for a in desc.artefacts):
        found.append(
            Problem(("artefacts",), "must list the model itself (an entry with kind: model)")
        )
    return found


def impossible(desc: SystemDescription) -> list[Problem]:
    """Every impossible combination in ``desc``, in field order."""
    return [*_model(desc), *_access_and_data(desc), *_outputs(desc), *_feedback(desc)]


def design_risks(desc: SystemDescription, facts: Facts | None = None) -> list[DesignWarning]:
    """Possible but risky combinations, each with the fields involved."""
    f = facts or Facts(desc)
    found: list[DesignWarning] = []

    def warn(code: str, message: str, *paths: str) -> None:
        found.append(DesignWarning(code=code, message=message, fields=f.refs(*paths)))

    out, access, fb = desc.outputs, desc.access, desc.feedback
    leaky = "logits" in out.returns or ("scores" in out.returns and out.score_decimals is None)
    if f.outside_queries and leaky:
        warn(
            "outputs-leak-to-outsiders",
            "Outsiders receive raw logits or unrounded scores: "
            "more than a label needs, and exactly what inversion, membership inference and "
            "extraction attacks feed on.",
            "access.callers",
            "outputs.returns",
            "outputs.score_decimals",
        )
    if f.anonymous and access.rate_limit is None:
        warn(
            "open-endpoint",
            "Anyone may query the model without authenticating and with "
            "no rate limit, so query-based attacks cost an attacker nothing.",
            "access.authentication",
            "access.rate_limit",
        )
    exposed = access.exposure in ("public_api", "partner_api")
    insiders_only = all(c in ("internal_systems", "employees") for c in access.callers)
    if exposed and insiders_only:
        warn(
            "exposure-callers-mismatch",
            f"The model is exposed as a {access.exposure} but "
            "only insiders are listed as callers; either the exposure or the caller list is "
            "wrong, and the analysis trusts the caller list.",
            "access.exposure",
            "access.callers",
        )
    if access.exposure in ("internal_service", "batch") and "anyone" in access.callers:
        warn(
            "exposure-callers-mismatch",
            f"The model is an {access.exposure} yet anyone may "
            "query it; an internal service reachable by anyone is a public one.",
            "access.exposure",
            "access.callers",
        )
    outside_feedback = [s for s in fb.sources if s in ("end_users", "partners")]
    if outside_feedback and fb.reviewed == "none":
        warn(
            "unreviewed-feedback",
            f"Feedback from {', '.join(outside_feedback)} reaches "
            "training without review: whoever sends feedback steers the next model.",
            "feedback.sources",
            "feedback.reviewed",
        )
    if fb.online_learning and f.outside_inputs:
        warn(
            "online-learning-from-outsiders",
            "The model learns online from inputs that "
            "outsiders supply; a poisoning campaign takes effect as it runs.",
            "feedback.online_learning",
            "inputs.supplied_by",
        )
    for i, art in enumerate(desc.artefacts):
        if art.format in CODE_ON_LOAD_FORMATS and not (art.signed and art.stored == "local_disk"):
            warn(
                "code-on-load-artefact",
                f"Artefact {art.name!r} is a {art.format} file, "
                "which runs code when loaded, and is not both signed and kept locally; "
                "convert it to a data-only format (safetensors, ONNX, skops, TorchScript).",
                f"artefacts.{i}.format",
                f"artefacts.{i}.signed",
                f"artefacts.{i}.stored",
            )
    base = desc.model.base_model
    if base is not None and not base.verified:
        warn(
            "unverified-base-model",
            f"The base model {base.name!r} was not verified "
            "against its publisher's checksum or signature.",
            "model.base_model",
        )
    d = desc.decisions
    if (d.security or d.safety) and d.automation == "fully_automated":
        warn(
            "automated-high-stakes",
            "Security or safety decisions are taken with no "
            "person in the loop, so a fooled model acts at once.",
            "decisions.security",
            "decisions.safety",
            "decisions.automation",
        )
    if f.outputs_travel and out.channel == "plaintext":
        warn(
            "plaintext-outputs",
            "Answers travel to other systems in plaintext, where "
            "anyone on the path can change them.",
            "outputs.channel",
        )
    elif out.passes_through and not out.signed:
        warn(
            "unsigned-outputs",
            "Answers pass through other systems unsigned, so a change "
            "on the way cannot be detected by the consumer.",
            "outputs.passes_through",
            "outputs.signed",
        )
    if desc.data.personal_data and desc.data.retention is None:
        warn(
            "no-retention",
            "The training data holds personal data but no retention period is stated.",
            "data.personal_data",
            "data.retention",
        )
    return found
