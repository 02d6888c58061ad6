"""The assessment config file: what to assess, with what, and when to fail.

A config is YAML validated by pydantic. Every error names the file, the line and
the field, and says what is allowed::

    name: my-model
    seed: 0
    target:
      path: models/classifier.onnx      # or url: https://..., kind: auto-detected
      query_budget: 20000
      security_decision: true           # e.g. a fraud or intrusion model
    data:
      path: data/test.csv               # or builtin: digits | breast_cancer
      label: is_fraud
    probes: all                         # or a list of ids / {id, params}
    report:
      formats: [json, sarif, html, markdown]
      output: bastion-report
    gate:
      fail_on: important

Examples
--------
>>> cfg = parse_config_text("target: {path: m.onnx}\\ndata: {builtin: digits}\\n", "c.yaml")
>>> cfg.targets[0].path, cfg.gate.fail_on
('m.onnx', None)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bastion.errors import ConfigError
from bastion.findings import Severity
from bastion.runs.yaml_source import YamlLocator, load_yaml, load_yaml_text

__all__ = [
    "AssessmentConfig",
    "DataConfig",
    "GateConfig",
    "ProbeSelection",
    "ReportConfig",
    "TargetConfig",
    "load_config",
    "parse_config_text",
]

REPORT_FORMATS = ("json", "sarif", "html", "markdown")
TARGET_KINDS = ("torch", "sklearn", "onnx", "http")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Strict):
    """Input spec overrides; anything left out is inferred from the data."""

    shape: list[int] | None = None
    dtype: str = "float32"
    lower: float | list[float] | None = None
    upper: float | list[float] | None = None
    feature_names: list[str] | None = None
    immutable: list[str] = Field(default_factory=list)
    integer: list[str] = Field(default_factory=list)
    one_hot_groups: list[list[str]] = Field(default_factory=list)


class DataConfig(_Strict):
    """Where the evaluation data comes from: a built-in dataset or a file."""

    builtin: Literal["digits", "breast_cancer", "intrusion"] | None = None
    path: str | None = None
    label: str | None = Field(None, description="Label column, for CSV files.")
    test_size: float = Field(0.25, gt=0, lt=1)
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.builtin is None) == (self.path is None):
            raise ValueError("give exactly one of 'builtin' or 'path'")
        return self


class TargetConfig(_Strict):
    """One model to assess."""

    name: str | None = None
    kind: Literal["torch", "sklearn", "onnx", "http"] | None = None
    path: str | None = None
    url: str | None = None
    classes: list[str] | None = None
    input: InputConfig | None = None
    query_budget: int | None = Field(None, ge=1)
    security_decision: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    data: DataConfig | None = None

    @model_validator(mode="after")
    def _one_location(self) -> TargetConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of 'path' (a model file) or 'url' (an endpoint)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("'url' must start with http:// or https://")
        return self

    @property
    def source(self) -> str:
        """The path or URL."""
        return self.path if self.path is not None else str(self.url)

    @property
    def display_name(self) -> str:
        """The name used in findings: ``name`` or the file stem / host."""
        if self.name:
            return self.name
        if self.path is not None:
            return Path(self.path).stem
        return str(self.url).split("//", 1)[-1].split("/", 1)[0]


class ProbeSelection(_Strict):
    """One probe to run, with its parameters."""

    id: str
    params: dict[str, Any] = Field(default_factory=dict)


class ReportConfig(_Strict):
    """Which reports to write, and where."""

    formats: list[str] = Field(default_factory=lambda: list(REPORT_FORMATS))
    output: str = "bastion-report"

    @field_validator("formats")
    @classmethod
    def _known(cls, formats: list[str]) -> list[str]:
        unknown = [f for f in formats if f not in REPORT_FORMATS]
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; allowed: {', '.join(REPORT_FORMATS)}")
        return formats


class GateConfig(_Strict):
    """When the command should exit 1: any vulnerable finding at or above ``fail_on``."""

    fail_on: Severity | None = None

    @field_validator("fail_on", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if value is None or isinstance(value, Severity):
            return value
        allowed = ("low", "moderate", "important", "critical")
        if str(value).lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return str(value).lower()


class AssessmentConfig(_Strict):
    """A whole assessment."""

    name: str = "assessment"
    seed: int = 0
    targets: list[TargetConfig] = Field(min_length=1)
    data: DataConfig | None = None
    probes: Literal["all"] | list[ProbeSelection] = "all"
    exclude: list[str] = Field(default_factory=list)
    report: ReportConfig = Field(default_factory=ReportConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    store: str | None = None
    base_dir: str = Field(".", description="Relative paths are resolved against this folder.")

    @model_validator(mode="before")
    @classmethod
    def _single_target(cls, values: Any) -> Any:
        if isinstance(values, dict) and "target" in values:
            if "targets" in values:
                raise ValueError("use either 'target' or 'targets', not both")
            values = dict(values)
            values["targets"] = [values.pop("target")]
        if isinstance(values, dict) and isinstance(values.get("probes"), list):
            values = dict(values)
            values["probes"] = [{"id": p} if isinstance(p, str) else p for p in values["probes"]]
        return values

    @model_validator(mode="after")
    def _every_target_has_data(self) -> AssessmentConfig:
        for i, target in enumerate(self.targets):
            if target.data is None and self.data is None:
                raise ValueError(
                    f"target {i} ({target.display_name}) has no data; add a top-level 'data' "
                    "section or one under the target"
                )
        names = [t.display_name for t in self.targets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique; repeated: {duplicates}")
        return self

    def resolve(self, relative: str) -> Path:
        """A path from the config, resolved against :attr:`base_dir`."""
        path = Path(relative).expanduser()
        joined = path if path.is_absolute() else Path(self.base_dir) / path
        return Path(os.path.normpath(joined))

    def data_for(self, target: TargetConfig) -> DataConfig:
        """The dataset a target is assessed with."""
        data = target.data or self.data
        assert data is not None  # guaranteed by validation
        return data

    def fingerprint(self) -> str:
        """Stable hash of everything that decides the results (not the report settings)."""
        decisive = self.model_dump(mode="json", exclude={"report", "gate", "store"})
        blob = json.dumps(decisive, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _explain(err: ValidationError, where: YamlLocator) -> str:
    lines = []
    for problem in err.errors()[:5]:
        loc = [p for p in problem["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        if loc[:1] == ["targets"] and where.has_top_level("target"):
            loc = ["target", *loc[2:]]
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            msg = "is not a known field (check the spelling)"
        elif problem["type"] == "missing":
            msg = "is required"
        elif problem["type"] == "too_short":
            msg = "needs at least one entry"
        msg = msg[:1].lower() + msg[1:]
        lines.append(f"{where.where(loc)}: '{field}' {msg}")
    more = len(err.errors()) - 5
    suffix = f" (and {more} more)" if more > 0 else ""
    return "; ".join(lines) + suffix + "."


def _validate(data: Any, where: YamlLocator, base_dir: Path) -> AssessmentConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where.source}: the config must be a YAML mapping with at least 'target' and "
            "'data'; see examples/ for a template."
        )
    data.setdefault("base_dir", str(base_dir))
    try:
        return AssessmentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(err, where)) from None


def parse_config_text(
    text: str, source: str = "<config>", base_dir: Path | None = None
) -> AssessmentConfig:
    """Validate a config given as YAML text."""
    data, where = load_yaml_text(text, source)
    return _validate(data, where, base_dir or Path())


def load_config(path: Path) -> AssessmentConfig:
    """Read and validate a config file; relative paths in it are relative to its folder."""
    data, where = load_yaml(path)
    return _validate(data, where, path.parent)
