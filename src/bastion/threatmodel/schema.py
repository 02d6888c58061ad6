"""The system description: what an ML system is, so that its threats can be derived.

A description is YAML validated by these pydantic models. Every section refuses unknown
keys, every choice is a closed vocabulary, and :mod:`bastion.threatmodel.loading` turns
validation problems into one sentence per problem naming the file, the line, the field
and the allowed values. ``docs/threat-modelling.md`` explains every field;
``docs/threatmodel-schema.json`` is the JSON Schema, regenerated with::

    python -m bastion.threatmodel.schema > docs/threatmodel-schema.json

Examples
--------
>>> desc = SystemDescription.model_validate({
...     "name": "digits",
...     "model": {"task": "classification", "type": "neural_network",
...               "framework": "pytorch", "origin": "trained_in_house"},
...     "inputs": {"modality": "image", "supplied_by": ["customers"]},
...     "access": {"exposure": "public_api", "callers": ["registered_users"],
...                "authentication": "api_key"},
...     "outputs": {"returns": ["label", "scores"]},
...     "data": {"sources": ["in_house"]},
...     "artefacts": [{"name": "model", "kind": "model", "format": "onnx"}],
... })
>>> desc.access.exposure, desc.controls
('public_api', {})
>>> desc.value_at("outputs.returns")
['label', 'scores']
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bastion.runs.config import DataConfig

__all__ = [
    "AccessSection",
    "Artefact",
    "BaseModelRef",
    "ControlClaim",
    "DataSection",
    "DecisionsSection",
    "FeedbackSection",
    "InputsSection",
    "ModelSection",
    "OutputsSection",
    "RateLimit",
    "SystemDescription",
    "description_schema",
    "description_schema_text",
]

SCHEMA_VERSION: Literal[1] = 1

Task = Literal[
    "classification", "regression", "detection", "ranking", "generation", "embedding", "control"
]
ModelType = Literal[
    "neural_network",
    "tree_ensemble",
    "linear",
    "svm",
    "nearest_neighbour",
    "probabilistic",
    "other",
]
Framework = Literal[
    "pytorch", "tensorflow", "jax", "scikit_learn", "xgboost", "lightgbm", "onnx", "other"
]
Origin = Literal["trained_in_house", "fine_tuned", "downloaded", "vendor_supplied"]
Learning = Literal["supervised", "unsupervised", "self_supervised", "reinforcement"]
Modality = Literal[
    "image", "audio", "video", "text", "tabular", "network_traffic", "time_series", "multimodal"
]
Party = Literal["anyone", "customers", "partners", "employees", "internal_systems"]
Caller = Literal["anyone", "registered_users", "partners", "employees", "internal_systems"]
Exposure = Literal["public_api", "partner_api", "internal_service", "on_device", "batch"]
Authentication = Literal["none", "api_key", "user_accounts", "mutual_tls", "network_only"]
HostedBy = Literal["self", "cloud_platform", "ml_vendor"]
OutputKind = Literal["label", "top_k", "scores", "logits", "embeddings"]
Consumer = Literal["callers", "people", "downstream_systems"]
Channel = Literal["in_process", "tls", "mutual_tls", "plaintext", "message_queue"]
Automation = Literal["fully_automated", "human_review", "advisory"]
DataSource = Literal[
    "in_house",
    "scraped",
    "user_generated",
    "third_party",
    "public_dataset",
    "purchased",
    "partners",
    "synthetic",
]
Labelling = Literal[
    "in_house", "third_party_labellers", "crowdsourced", "user_reports", "automatic", "outcomes"
]
FeedbackSource = Literal["end_users", "outcomes", "analysts", "partners"]
Review = Literal["none", "sampled", "all"]
Retraining = Literal["never", "on_demand", "scheduled", "continuous"]
ArtefactKind = Literal["model", "dataset", "code", "container", "preprocessing"]
ArtefactFormat = Literal[
    "pickle",
    "joblib",
    "torch_save",
    "torchscript",
    "torch_export",
    "onnx",
    "safetensors",
    "skops",
    "keras_h5",
    "savedmodel",
    "gguf",
    "parquet",
    "csv",
    "other",
]
Storage = Literal[
    "local_disk", "object_storage", "model_registry", "public_hub", "device", "vendor"
]
ControlStatus = Literal["yes", "partial", "no"]


def _default_consumers() -> list[Consumer]:
    return ["callers"]


def _default_labelling() -> list[Labelling]:
    return ["in_house"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseModelRef(_Section):
    """The pre-trained model a fine-tuned or downloaded model comes from."""

    name: str = Field(description="What it is called where it came from.")
    source: Literal["public_hub", "vendor", "research_release", "internal"] = Field(
        description="Where it was obtained."
    )
    url: str | None = Field(None, description="Where it was downloaded from.")
    verified: bool = Field(
        False, description="Its checksum or signature was checked against the publisher's."
    )


class ModelSection(_Section):
    """The model: what it does, what it is and where it came from."""

    task: Task
    type: ModelType = Field(description="The model family.")
    framework: Framework
    origin: Origin = Field(description="Trained in-house, fine-tuned from a base, or obtained.")
    learning: Learning = Field("supervised", description="How it learns; RL modes need this.")
    base_model: BaseModelRef | None = Field(
        None, description="Required when origin is fine_tuned or downloaded."
    )


class InputsSection(_Section):
    """What the model is fed and who can influence it."""

    modality: Modality
    supplied_by: list[Party] = Field(
        min_length=1, description="Who produces the inputs the model scores."
    )
    physical_world: bool = Field(
        False, description="Inputs are captured by a camera, scanner, microphone or sensor."
    )


class RateLimit(_Section):
    """A per-caller query limit."""

    queries: int = Field(ge=1)
    per: Literal["second", "minute", "hour", "day"]


class AccessSection(_Section):
    """How the model is reached, by whom and how often."""

    exposure: Exposure
    callers: list[Caller] = Field(min_length=1, description="Who may query the model.")
    authentication: Authentication
    rate_limit: RateLimit | None = Field(None, description="Omit when there is no limit.")
    hosted_by: HostedBy = Field("self", description="Who runs the serving infrastructure.")
    url: str | None = Field(None, description="The endpoint, for the emitted assessment.")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url


class OutputsSection(_Section):
    """What an answer carries and where it goes."""

    returns: list[OutputKind] = Field(min_length=1)
    score_decimals: int | None = Field(
        None, ge=0, le=16, description="Decimals scores are rounded to; omit when unrounded."
    )
    top_k: int | None = Field(None, ge=1, description="Classes per answer when returns top_k.")
    consumers: list[Consumer] = Field(default_factory=_default_consumers, min_length=1)
    passes_through: list[str] = Field(
        default_factory=list, description="Systems an answer crosses before it is acted on."
    )
    channel: Channel = Field("tls", description="How answers travel to their consumers.")
    signed: bool = Field(False, description="Answers carry a signature consumers check.")


class DecisionsSection(_Section):
    """What the model's answers decide."""

    security: bool = Field(False, description="Authentication, fraud, malware, intrusion, ...")
    safety: bool = Field(False, description="Harm to people: health, vehicles, machinery.")
    financial: bool = Field(False, description="Money moves on the answer.")
    affects_individuals: bool = Field(False, description="Decisions about named people.")
    automation: Automation = "fully_automated"
    summary: str = Field("", description="One sentence on what is decided.")


class DataSection(_Section):
    """The training data."""

    sources: list[DataSource] = Field(min_length=1)
    labelling: list[Labelling] = Field(default_factory=_default_labelling, min_length=1)
    personal_data: bool = False
    sensitive_attributes: list[str] = Field(
        default_factory=list, description="e.g. health, biometric, financial."
    )
    confidential: bool = Field(False, description="Business-confidential records.")
    retention: str | None = Field(None, description="How long training data is kept.")
    evaluation: DataConfig | None = Field(
        None, description="Test data for the emitted assessment (as in assessment configs)."
    )


class FeedbackSection(_Section):
    """How the model keeps learning after deployment."""

    online_learning: bool = Field(False, description="The model updates from live traffic.")
    sources: list[FeedbackSource] = Field(
        default_factory=list, description="Feedback that flows back into training data."
    )
    reviewed: Review = Field("none", description="Human review of feedback before training.")
    retraining: Retraining = "never"
    cadence: str | None = Field(None, description="e.g. weekly, for scheduled retraining.")


class Artefact(_Section):
    """A file the system is built from."""

    name: str
    kind: ArtefactKind
    format: ArtefactFormat
    stored: Storage = "local_disk"
    signed: bool = False
    path: str | None = Field(None, description="Local file, relative to the description.")
    source: str | None = Field(None, description="Where it was obtained, e.g. a URL.")


class ControlClaim(_Section):
    """Whether one ATLAS mitigation is in place: ``yes``, ``partial`` or ``no``."""

    status: ControlStatus
    note: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML reads a bare yes/no as a boolean
            return {"status": "yes" if value else "no"}
        if isinstance(value, str):
            return {"status": value.strip().lower()}
        return value


_CLAIM_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"enum": ["yes", "partial", "no"]},
        {"type": "boolean", "description": "YAML 1.1 reads a bare yes or no as a boolean."},
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["yes", "partial", "no"]},
                "note": {"type": "string"},
            },
            "required": ["status"],
        },
    ],
    "description": ControlClaim.__doc__,
}


class SystemDescription(_Section):
    """A whole ML system, as ``bastion threat-model`` reads it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(min_length=1)
    summary: str = ""
    model: ModelSection
    inputs: InputsSection
    access: AccessSection
    outputs: OutputsSection
    decisions: DecisionsSection = Field(default_factory=DecisionsSection)
    data: DataSection
    feedback: FeedbackSection = Field(default_factory=FeedbackSection)
    artefacts: list[Artefact] = Field(min_length=1)
    controls: dict[str, Annotated[ControlClaim, WithJsonSchema(_CLAIM_SCHEMA)]] = Field(
        default_factory=dict,
        description="ATLAS mitigation id (AML.M0000-AML.M0019) -> yes | partial | no.",
        json_schema_extra={"propertyNames": {"pattern": "^[Aa][Mm][Ll]\\.[Mm][0-9]{4}$"}},
    )

    def value_at(self, path: str) -> Any:
        """The JSON value at a dotted field path, e.g. ``"access.callers"`` or
        ``"artefacts.0.format"``."""
        node: Any = self.model_dump(mode="json")
        if path.startswith("controls."):  # mitigation ids contain dots themselves
            claim = node["controls"].get(path.removeprefix("controls."))
            return None if claim is None else claim["status"]
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node


def description_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`SystemDescription`."""
    schema = SystemDescription.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:bastion:system-description:{SCHEMA_VERSION}",
        **schema,
    }


def description_schema_text() -> str:
    """:func:`description_schema` as the exact text of ``docs/threatmodel-schema.json``."""
    return json.dumps(description_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(description_schema_text())
