"""Facts about a system that several threats depend on, each with its own reason.

A :class:`Fact` is a yes/no statement about the described system plus a
:class:`~bastion.threatmodel.results.Reason` that explains it either way and cites the
fields it was read from. The applicability rules, the risk factors and the severity
inputs are all written in terms of these facts, so every conclusion is traceable.

Examples
--------
>>> from bastion.threatmodel.samples import minimal_description
>>> facts = Facts(minimal_description())
>>> facts.outside_inputs.holds
True
>>> facts.outside_inputs.reason.cited()
'inputs are supplied by customers, who can shape them (inputs.supplied_by: [customers])'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from bastion.threatmodel.results import FieldRef, Reason
from bastion.threatmodel.schema import SystemDescription

__all__ = ["CODE_ON_LOAD_FORMATS", "Fact", "Facts"]

#: Parties outside the organisation.
OUTSIDERS = ("anyone", "customers", "partners", "registered_users")
#: Serialisation formats that run code when a file is loaded.
CODE_ON_LOAD_FORMATS = ("pickle", "joblib", "torch_save", "keras_h5")
_UNTRUSTED_SOURCES = (
    "scraped",
    "user_generated",
    "third_party",
    "public_dataset",
    "purchased",
    "partners",
)
_UNTRUSTED_LABELS = ("third_party_labellers", "crowdsourced", "user_reports")
_RICH_OUTPUTS = ("top_k", "scores", "logits", "embeddings")
_SHARED_STORAGE = ("public_hub", "device", "vendor")


@dataclass(frozen=True)
class Fact:
    """A statement about the system and why it is (or is not) true."""

    holds: bool
    reason: Reason

    def __bool__(self) -> bool:
        return self.holds


def _join(items: Sequence[str]) -> str:
    return ", ".join(i.replace("_", " ") for i in items)


class Facts:
    """Derived facts about one description, computed on first use."""

    def __init__(self, desc: SystemDescription) -> None:
        self.desc = desc

    def refs(self, *paths: str) -> list[FieldRef]:
        """Field references with the description's values."""
        return [FieldRef(path=p, value=self.desc.value_at(p)) for p in paths]

    def fact(self, holds: bool, text: str, *paths: str) -> Fact:
        """A :class:`Fact` whose reason cites ``paths``."""
        return Fact(holds, Reason(text=text, fields=self.refs(*paths)))

    # -- who can reach the model -------------------------------------------------------
    @cached_property
    def outside_inputs(self) -> Fact:
        """Someone outside the organisation produces the inputs the model scores."""
        who = [p for p in self.desc.inputs.supplied_by if p in OUTSIDERS]
        if who:
            return self.fact(
                True,
                f"inputs are supplied by {_join(who)}, who can shape them",
                "inputs.supplied_by",
            )
        inside = _join(list(self.desc.inputs.supplied_by))
        return self.fact(
            False, f"inputs come only from {inside}, inside the organisation", "inputs.supplied_by"
        )

    @cached_property
    def any_inputs(self) -> Fact:
        """Someone other than internal systems (employees included) produces inputs."""
        who = [p for p in self.desc.inputs.supplied_by if p != "internal_systems"]
        text = (
            f"people ({_join(who)}) supply inputs" if who else "only internal systems supply inputs"
        )
        return self.fact(bool(who), text, "inputs.supplied_by")

    @cached_property
    def outside_queries(self) -> Fact:
        """Outsiders can query the model, or hold a copy of it."""
        access = self.desc.access
        if access.exposure == "on_device":
            return self.fact(
                True,
                "the model runs on devices outside the organisation's "
                "control, so whoever holds one can query it freely",
                "access.exposure",
            )
        who = [c for c in access.callers if c in OUTSIDERS]
        if who:
            return self.fact(True, f"{_join(who)} may query the model", "access.callers")
        return self.fact(
            False, f"only {_join(list(access.callers))} may query the model", "access.callers"
        )

    @cached_property
    def untrusted_queries(self) -> Fact:
        """Someone not entitled to the training data can query (insiders included)."""
        if self.outside_queries:
            return self.outside_queries
        people = [c for c in self.desc.access.callers if c == "employees"]
        if people:
            return self.fact(
                True,
                "employees may query the model, and not every employee "
                "may see every training record",
                "access.callers",
            )
        return self.fact(False, "only internal systems query the model", "access.callers")

    @cached_property
    def anonymous(self) -> Fact:
        """Anyone may query without authenticating."""
        a = self.desc.access
        holds = a.authentication == "none" and "anyone" in a.callers
        text = (
            "anyone may query it without authenticating"
            if holds
            else f"callers authenticate ({a.authentication})"
        )
        return self.fact(holds, text, "access.authentication", "access.callers")

    @cached_property
    def white_box(self) -> Fact:
        """An attacker can obtain the model itself (on devices or in a public place)."""
        if self.desc.access.exposure == "on_device":
            return self.fact(True, "the model file ships to devices", "access.exposure")
        for i, art in enumerate(self.desc.artefacts):
            if art.kind == "model" and art.stored == "public_hub":
                return self.fact(
                    True,
                    f"the model artefact {art.name!r} sits on a public hub",
                    f"artefacts.{i}.stored",
                )
        return self.fact(
            False, "the model stays on infrastructure the organisation controls", "access.exposure"
        )

    # -- what answers reveal and where they go ---------------------------------------
    @cached_property
    def rich_outputs(self) -> Fact:
        """Answers carry more than a label."""
        rich = [r for r in self.desc.outputs.returns if r in _RICH_OUTPUTS]
        if rich:
            return self.fact(
                True, f"answers carry {_join(rich)}, not just a label", "outputs.returns"
            )
        return self.fact(False, "answers carry a label only", "outputs.returns")

    @cached_property
    def outputs_travel(self) -> Fact:
        """Answers cross other systems before something acts on them."""
        out = self.desc.outputs
        if out.passes_through:
            return self.fact(
                True,
                f"answers pass through {_join(out.passes_through)} before they are acted on",
                "outputs.passes_through",
                "outputs.channel",
            )
        if "downstream_systems" in out.consumers and out.channel != "in_process":
            return self.fact(
                True,
                f"downstream systems receive answers over {out.channel}",
                "outputs.consumers",
                "outputs.channel",
            )
        return self.fact(
            False,
            "answers go straight back to whoever asked",
            "outputs.consumers",
            "outputs.passes_through",
        )

    # -- where the model and its data come from ---------------------------------------
    @cached_property
    def external_model(self) -> Fact:
        """The model, or its starting point, was made by someone else."""
        origin = self.desc.model.origin
        if origin == "trained_in_house":
            return self.fact(False, "the model was trained in-house from scratch", "model.origin")
        paths = ["model.origin"] + (["model.base_model"] if self.desc.model.base_model else [])
        what = {
            "fine_tuned": "the model is fine-tuned from a pre-trained base made elsewhere",
            "downloaded": "the model was downloaded ready-made",
            "vendor_supplied": "a vendor trained and supplied the model",
        }[origin]
        return self.fact(True, what, *paths)

    @cached_property
    def untrusted_data(self) -> Fact:
        """Training data or labels come from parties an attacker could be, or reach."""
        data = self.desc.data
        sources = [s for s in data.sources if s in _UNTRUSTED_SOURCES]
        labels = [s for s in data.labelling if s in _UNTRUSTED_LABELS]
        if sources or labels:
            parts = []
            if sources:
                parts.append(f"training data comes from {_join(sources)}")
            if labels:
                parts.append(f"labels come from {_join(labels)}")
            return self.fact(True, " and ".join(parts), "data.sources", "data.labelling")
        return self.fact(
            False,
            "training data and labels are produced in-house",
            "data.sources",
            "data.labelling",
        )

    @cached_property
    def feedback_trains(self) -> Fact:
        """Feedback from deployment flows back into the model."""
        fb = self.desc.feedback
        if fb.online_learning:
            return self.fact(
                True, "the model learns online from live traffic", "feedback.online_learning"
            )
        if fb.sources:
            return self.fact(
                True,
                f"feedback from {_join(list(fb.sources))} flows into {fb.retraining} retraining",
                "feedback.sources",
                "feedback.retraining",
            )
        return self.fact(False, "no feedback flows back into training", "feedback.sources")

    @cached_property
    def private_data(self) -> Fact:
        """The training data is personal, sensitive or confidential."""
        d = self.desc.data
        if d.personal_data or d.sensitive_attributes or d.confidential:
            what = []
            if d.personal_data:
                what.append("personal data")
            if d.sensitive_attributes:
                what.append(f"sensitive attributes ({_join(d.sensitive_attributes)})")
            if d.confidential:
                what.append("confidential records")
            return self.fact(
                True,
                f"training data holds {' and '.join(what)}",
                "data.personal_data",
                "data.sensitive_attributes",
                "data.confidential",
            )
        return self.fact(
            False,
            "training data holds no personal, sensitive or confidential records",
            "data.personal_data",
            "data.confidential",
        )

    @cached_property
    def code_on_load(self) -> Fact:
        """Some artefact is in a format that runs code when loaded."""
        for i, art in enumerate(self.desc.artefacts):
            if art.format in CODE_ON_LOAD_FORMATS:
                return self.fact(
                    True,
                    f"artefact {art.name!r} is a {art.format} file, which can run code when loaded",
                    f"artefacts.{i}.format",
                )
        return self.fact(False, "no artefact uses a format that runs code when loaded", "artefacts")

    @cached_property
    def mutable_parameters(self) -> Fact:
        """Someone outside the training team could change the deployed parameters."""
        for i, art in enumerate(self.desc.artefacts):
            if art.kind != "model":
                continue
            if art.stored in _SHARED_STORAGE:
                return self.fact(
                    True,
                    f"model artefact {art.name!r} is stored on {art.stored}",
                    f"artefacts.{i}.stored",
                )
            if not art.signed:
                return self.fact(
                    True,
                    f"model artefact {art.name!r} is not signed, so a change to it goes unnoticed",
                    f"artefacts.{i}.signed",
                )
        if self.external_model:
            return self.external_model
        return self.fact(
            False, "every model artefact is signed and kept in private storage", "artefacts"
        )

    # -- what the answers decide --------------------------------------------------------
    @cached_property
    def high_stakes(self) -> Fact:
        """The answers decide something about security, safety, money or people."""
        d = self.desc.decisions
        stakes = [
            name
            for name, on in (
                ("security", d.security),
                ("safety", d.safety),
                ("money", d.financial),
                ("individuals", d.affects_individuals),
            )
            if on
        ]
        if stakes:
            paths = [
                f"decisions.{name}"
                for name in ("security", "safety", "financial", "affects_individuals")
                if getattr(d, name)
            ]
            return self.fact(True, f"answers decide matters of {_join(stakes)}", *paths)
        return self.fact(
            False,
            "answers decide nothing about security, safety, money or individuals",
            "decisions.security",
            "decisions.safety",
            "decisions.financial",
        )
