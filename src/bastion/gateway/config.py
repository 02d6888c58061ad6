"""The gateway config file: which models to serve, behind which guards, with which store.

A gateway config is YAML validated by pydantic; every error names the file, the line
and the field. Secrets never live in it: the API-key pepper, the signing key and any
upstream credential come from environment variables or files, and a config holding
something that looks like a secret is refused::

    store: .bastion/gateway.db            # SQLite path or SQLAlchemy URL (no password)
    redis_url_env: BASTION_REDIS_URL      # shared limits for several workers (optional)
    signing_key_file: gateway.pem         # or BASTION_SIGNING_KEY_FILE in the environment
    models:
      - name: digits
        demo: digits                      # or path: model.onnx / url: http://...
        guards:
          - access.authentication
          - {id: access.rate_limit, rate: 20, burst: 100, quota: 50000, window_s: 86400}
          - input.validation
          - {id: input.ood, fpr: 0.01, action: flag}
          - output.signature

Examples
--------
>>> cfg = parse_gateway_text("models: [{name: d, demo: digits, guards: [input.validation]}]")
>>> cfg.models[0].name, cfg.models[0].guard_ids()
('d', ['input.validation'])
>>> parse_gateway_text("models: [{name: d, demo: digits}]\\napi_key: bst_1", "g.yaml")
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
bastion.errors.ConfigError: g.yaml, line 2: 'api_key' looks like a secret; secrets never go in a ...
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bastion.errors import ConfigError
from bastion.runs.config import DataConfig, InputConfig
from bastion.runs.yaml_source import YamlLocator, load_yaml, load_yaml_text

__all__ = [
    "GatewayConfig",
    "ModelConfig",
    "load_gateway_config",
    "parse_gateway_text",
]

_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|api_?key|pepper|private_?key|credential)s?$", re.IGNORECASE
)
_SECRET_VALUE = re.compile(r"^(bst_[0-9a-f]{16}_|-----BEGIN [A-Z ]*PRIVATE KEY-----|eyJ)")
_URL_PASSWORD = re.compile(r"^[a-z0-9+]+://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """One served model: where it comes from, what guards it, which data is its reference."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    demo: Literal["digits", "breast_cancer"] | None = None
    kind: Literal["torch", "sklearn", "onnx", "http"] | None = None
    path: str | None = None
    url: str | None = None
    classes: list[str] | None = None
    input: InputConfig | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    reference: DataConfig | None = Field(
        None, description="Data the OOD, drift and extraction guards are fitted on."
    )
    version: str = ""
    output: Literal["auto", "scores", "labels"] = "auto"
    guards: list[str | dict[str, Any]] = Field(default_factory=list)
    execution: Literal["auto", "inline", "threadpool"] = Field(
        "auto",
        description="Run the pipeline on the event loop ('inline', for models that answer "
        "in well under a millisecond) or in a worker thread ('threadpool'); 'auto' times "
        "the model at start-up (bastion.gateway.execution).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        given = [k for k in ("demo", "path", "url") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'demo', 'path' (a model file) or 'url'")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("'url' must start with http:// or https://")
        if self.demo is None and not self.classes:
            raise ValueError("a model file or url needs 'classes' (class names in output order)")
        if self.demo is None and (self.input is None or self.input.shape is None):
            raise ValueError("a model file or url needs 'input.shape' (the shape of one row)")
        for i, spec in enumerate(self.guards):
            if isinstance(spec, dict) and not isinstance(spec.get("id"), str):
                raise ValueError(f"guard {i} is a mapping without an 'id'")
        return self

    def guard_ids(self) -> list[str]:
        """The ids of the configured guards, in the order written."""
        return [g if isinstance(g, str) else str(g["id"]) for g in self.guards]


class GatewayConfig(_Strict):
    """A whole gateway."""

    models: list[ModelConfig] = Field(min_length=1)
    store: str | None = Field(None, description="SQLite path or SQLAlchemy URL (no password).")
    store_env: str | None = Field(None, description="Environment variable holding the store URL.")
    redis_url: str | None = Field(None, description="redis://host:port/db, without a password.")
    redis_url_env: str | None = None
    redis_prefix: str = "bastion:rl"
    signing_key_file: str | None = None
    sqlite_synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite store durability: 'normal' survives a killed process, 'full' "
        "also a power cut (one fsync per audit transaction).",
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="torch.set_num_threads in each worker process of `bastion serve` (null: "
        "torch's default, one per core).",
    )
    max_body_bytes: int = Field(16 * 2**20, ge=1024)
    max_batch: int = Field(1024, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    base_dir: str = Field(".", description="Relative paths are resolved against this folder.")

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        for what in ("store", "redis_url"):
            value = getattr(self, what)
            if value and _URL_PASSWORD.match(value):
                raise ValueError(
                    f"'{what}' holds a password; put the URL in an environment variable and "
                    f"name it with '{what.removesuffix('_url')}_env'"
                    if what == "store"
                    else "'redis_url' holds a password; use 'redis_url_env' instead"
                )
        return self

    def resolve(self, path: str) -> Path:
        """``path`` relative to the config's folder (absolute paths unchanged)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


def _find_secrets(data: Any, path: list[str | int]) -> list[tuple[list[str | int], str]]:
    found: list[tuple[list[str | int], str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = [*path, str(key)]
            name = str(key)
            if (
                _SECRET_KEY.search(name)
                and not name.endswith(("_env", "_file"))
                and isinstance(value, str)
                and value
            ):
                found.append((here, "looks like a secret"))
            else:
                found.extend(_find_secrets(value, here))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(_find_secrets(value, [*path, i]))
    elif isinstance(data, str) and _SECRET_VALUE.match(data.strip()):
        found.append((path, "holds what looks like a key or token"))
    return found


def _explain(err: ValidationError, where: YamlLocator) -> str:
    lines = []
    for problem in err.errors()[:5]:
        loc = [p for p in problem["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
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
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "") + "."


def _validate(data: Any, where: YamlLocator, base_dir: Path) -> GatewayConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where.source}: a gateway config must be a YAML mapping with a 'models' list; see "
            "examples/gateway.yaml."
        )
    secrets = _find_secrets(data, [])
    if secrets:
        loc, why = secrets[0]
        field = ".".join(str(p) for p in loc)
        raise ConfigError(
            f"{where.where(loc)}: '{field}' {why}; secrets never go in a config file: set an "
            "environment variable or a file and name it with a '*_env' or '*_file' field."
        )
    data = dict(data)
    data.setdefault("base_dir", str(base_dir))
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(err, where)) from None


def parse_gateway_text(
    text: str, source: str = "<gateway config>", base_dir: Path | None = None
) -> GatewayConfig:
    """Validate a gateway config given as YAML text."""
    data, where = load_yaml_text(text, source)
    return _validate(data, where, base_dir or Path())


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway config; relative paths in it are relative to its folder."""
    p = Path(path)
    data, where = load_yaml(p)
    return _validate(data, where, p.parent)
