"""Turning a :class:`GatewayConfig` into served models: targets, guards and sinks.

Guards are named by id with YAML-friendly parameters. The built-in guards need objects
(a key store, fitted detectors, a signing key); this module builds them from plain
parameters and the model's reference data. Any other id is passed as-is to
:func:`bastion.guards.build_guard`, so a plugin guard is still a one-line config entry.

=====================  ================================================================
guard id               parameters
=====================  ================================================================
access.authentication  ``api_keys`` (true), ``jwt: {issuer, audience, hs256_secret_env,
                       ed25519_public_key_file}``
access.rate_limit      ``rate``, ``burst``, ``quota``, ``window_s``, ``per``; or ``limits:
                       [{rate, burst, per} | {quota, window_s, per}]``
input.validation       ``max_batch``, ``max_bytes`` (default: the gateway's limits)
input.ood              ``method``, ``k``, ``fpr``, ``action`` (fitted on the reference)
input.drift            ``window``, ``stride``, ``false_alarm_every``
extraction.prada       ``action``, ``min_distances``, ``window``, ``test_every``, ``delta``
output.abstention      ``min_margin``, ``min_confidence`` (queue in the store)
output.obfuscation     ``label_only``, ``top_k``, ``decimals``, ``reverse_sigmoid``,
                       ``per_principal: {name: {...}}``
output.signature       none (the signing key comes from the environment or a file)
=====================  ================================================================

Examples
--------
>>> from bastion.gateway.config import parse_gateway_text
>>> cfg = parse_gateway_text("models: [{name: d, demo: breast_cancer, guards: [input.validation]}]")
>>> gw = build_gateway(cfg, store_url="sqlite://")
>>> [g.meta.id for g in gw.models["d"].guarded.guards]
['input.validation']
>>> gw.close()
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.errors import ConfigError
from bastion.gateway.audit_writer import AsyncAuditWriter
from bastion.gateway.config import GatewayConfig, ModelConfig
from bastion.gateway.execution import ExecutionChoice, choose_execution
from bastion.guards.audit import AuditLog
from bastion.guards.base import Guard
from bastion.guards.config import build_guard
from bastion.guards.db import GuardDB
from bastion.guards.events import EventSink, LoggingSink, MetricsSink
from bastion.guards.pipeline import Guarded
from bastion.guards.wal import WalCheckpointer
from bastion.targets.base import Target
from bastion.targets.spec import InputSpec

__all__ = ["Gateway", "ServedModel", "build_gateway"]

log = logging.getLogger(__name__)

SIGNING_KEY_FILE_ENV = "BASTION_SIGNING_KEY_FILE"
REDIS_URL_ENV = "BASTION_REDIS_URL"
_DEMO_KEYS = {"digits": "digits_cnn", "breast_cancer": "breast_cancer"}


@dataclass
class ServedModel:
    """One model behind its pipeline."""

    name: str
    target: Target
    guarded: Guarded
    reference: np.ndarray | None = None
    execution: ExecutionChoice = field(
        default_factory=lambda: ExecutionChoice(inline=False, mode="threadpool")
    )


@dataclass
class Gateway:
    """Everything a gateway process serves, and what must be closed when it stops."""

    config: GatewayConfig
    models: dict[str, ServedModel]
    db: GuardDB
    metrics: MetricsSink
    audit: AuditLog
    signing_key: Ed25519PrivateKey | None
    extra_sinks: list[EventSink] = field(default_factory=list)
    audit_writer: AsyncAuditWriter | None = None
    """Writes the audit entries of inline pipelines from the event loop."""
    wal: WalCheckpointer | None = None
    """Checkpoints a SQLite store's write-ahead log off the request path."""

    def close(self) -> None:
        """Finish audit writes, sign the audit head, close HTTP targets and the store."""
        try:
            if self.audit_writer is not None:
                self.audit_writer.close()
            self.audit.close()
            if self.wal is not None:
                self.wal.stop()
        finally:
            for served in self.models.values():
                closer = getattr(served.target, "close", None)
                if callable(closer):
                    closer()
            self.db.close()


def _demo_folder() -> Path | None:
    here = Path(__file__).resolve().parents[3] / "examples" / "models"
    return here if (here / "demo_models.json").is_file() else None


@functools.cache
def _demo_target(which: str) -> tuple[Target, np.ndarray]:
    """The demo model (saved copy, else trained) and its training rows; one per process."""
    from bastion.data.demo import DEMO_DATASETS

    data = DEMO_DATASETS[which](0)
    folder = _demo_folder()
    if folder is not None:
        from bastion.demo.models import load_demo_models

        return load_demo_models(folder)[_DEMO_KEYS[which]], data.x_train
    from bastion.demo.models import train_breast_cancer_model, train_digits_cnn

    log.info("training the %s demo model (no saved copy found)", which)
    trainer = train_digits_cnn if which == "digits" else train_breast_cancer_model
    return trainer(data, seed=0), data.x_train


def _reference(model: ModelConfig, config: GatewayConfig) -> np.ndarray | None:
    if model.reference is None:
        return None
    from bastion.data import DEMO_DATASETS, load_dataset

    ref = model.reference
    if ref.builtin is not None:
        return DEMO_DATASETS[ref.builtin](0).x_train
    assert ref.path is not None
    opts: dict[str, Any] = {"test_size": ref.test_size, "seed": 0}
    if ref.label is not None:
        opts["label"] = ref.label
    return load_dataset(config.resolve(ref.path), **opts).x_train


def _load(model: ModelConfig, config: GatewayConfig) -> tuple[Target, np.ndarray | None]:
    if model.demo is not None:
        target, ref = _demo_target(model.demo)
        explicit = _reference(model, config)
        return target, explicit if explicit is not None else ref
    from bastion.targets.loading import load_target

    assert model.input is not None and model.classes is not None
    given = model.input.model_dump(exclude_unset=True)
    given["shape"] = tuple(model.input.shape or ())
    try:
        spec = InputSpec(**given)
    except ValueError as err:
        raise ConfigError(f"Model {model.name!r}: the 'input' section is invalid: {err}") from None
    source = model.url if model.url is not None else str(config.resolve(str(model.path)))
    target = load_target(
        source,
        kind=model.kind,
        input_spec=spec,
        classes=model.classes,
        name=model.name,
        options=model.options,
    )
    return target, _reference(model, config)


def _need_reference(model: ModelConfig, guard_id: str, ref: np.ndarray | None) -> np.ndarray:
    if ref is None:
        raise ConfigError(
            f"Model {model.name!r}: guard {guard_id!r} is fitted on reference data; add "
            "'reference: {builtin: digits}' or 'reference: {path: data.csv, label: y}'."
        )
    return ref


_LOOP_SAFE_GUARDS = frozenset(
    {
        "access.authentication",  # API keys from a cache (the store on a miss), JWT in memory
        "input.validation",
        "input.ood",
        "input.drift",
        "extraction.prada",
        "output.obfuscation",
        "output.signature",
    }
)
"""Guards that may run on the event loop (``execution: auto``); others wait on I/O or
run further models (review queue writes, Redis limits, detectors, plugins)."""


class _Builder:
    def __init__(self, gw: GatewayConfig, db: GuardDB, key: Ed25519PrivateKey | None) -> None:
        self.gw = gw
        self.db = db
        self.key = key
        self._keys: Any = None
        self._limiter: Any = None

    def loop_safe(self, guard_id: str) -> bool:
        """Whether ``guard_id`` as built here only computes (no store, network or model)."""
        if guard_id == "access.rate_limit":
            return not self.redis_url()
        return guard_id in _LOOP_SAFE_GUARDS

    def redis_url(self) -> str | None:
        if self.gw.redis_url_env:
            return os.environ.get(self.gw.redis_url_env) or None
        return self.gw.redis_url

    def limiter(self) -> Any:
        if self._limiter is None:
            url = self.redis_url()
            if url:
                from bastion.guards.limits_redis import RedisLimiter

                self._limiter = RedisLimiter.from_url(url, prefix=self.gw.redis_prefix)
            else:
                from bastion.guards.limits import MemoryLimiter

                self._limiter = MemoryLimiter()
        return self._limiter

    def build(self, model: ModelConfig, target: Target, ref: np.ndarray | None, spec: Any) -> Guard:
        gid, p = (spec, {}) if isinstance(spec, str) else (spec["id"], dict(spec))
        p.pop("id", None)
        try:
            return self._build(model, target, ref, gid, p)
        except TypeError as err:
            raise ConfigError(
                f"Model {model.name!r}: guard {gid!r} does not take these parameters "
                f"({sorted(p)}): {err}."
            ) from None

    def _build(
        self,
        model: ModelConfig,
        target: Target,
        ref: np.ndarray | None,
        gid: str,
        p: dict[str, Any],
    ) -> Guard:
        if gid == "access.authentication":
            return self._auth(p)
        if gid == "access.rate_limit":
            return self._rate(p)
        if gid == "input.validation":
            from bastion.guards.validation import InputValidationGuard

            p.setdefault("max_batch", self.gw.max_batch)
            p.setdefault("max_bytes", self.gw.max_body_bytes)
            return InputValidationGuard.for_target(target, **p)
        if gid == "input.ood":
            from bastion.guards.ood import OODDetector, OODGuard

            action = p.pop("action", "deny")
            det = OODDetector(**p).fit(_need_reference(model, gid, ref))
            return OODGuard(det, action=action)
        if gid == "input.drift":
            from bastion.guards.drift import DriftGuard, DriftMonitor

            return DriftGuard(DriftMonitor(**p).fit(_need_reference(model, gid, ref)))
        if gid == "extraction.prada":
            from bastion.guards.extraction import ExtractionMonitorGuard, PradaMonitor

            action = p.pop("action", "flag")
            mon = PradaMonitor(**p).standardise_with(_need_reference(model, gid, ref))
            return ExtractionMonitorGuard(mon, action=action)
        if gid == "output.abstention":
            from bastion.guards.abstention import AbstentionGuard
            from bastion.guards.review import StoreReviewQueue

            return AbstentionGuard(StoreReviewQueue(self.db), **p)
        if gid == "output.obfuscation":
            from bastion.guards.obfuscation import ObfuscationGuard, ObfuscationPolicy

            per = {k: _policy(v) for k, v in (p.pop("per_principal", None) or {}).items()}
            return ObfuscationGuard(ObfuscationPolicy(**_policy_args(p)), per_principal=per)
        if gid == "output.signature":
            from bastion.guards.signing import OutputSigner

            if self.key is None:
                raise ConfigError(
                    f"Model {model.name!r}: output.signature needs a signing key; set "
                    f"'signing_key_file' or {SIGNING_KEY_FILE_ENV} (create one with "
                    "`bastion keys signing-key --out gateway.pem`)."
                )
            return OutputSigner(self.key, **p)
        return build_guard({"id": gid, **p})

    def _auth(self, p: dict[str, Any]) -> Guard:
        from bastion.guards.apikeys import ApiKeyStore, load_pepper
        from bastion.guards.auth import AuthGuard

        keys = None
        if p.pop("api_keys", True):
            if self._keys is None:
                self._keys = ApiKeyStore(self.db, pepper=load_pepper())
            keys = self._keys
        jwt = None
        jwt_cfg = p.pop("jwt", None)
        if p:
            raise TypeError(f"unknown parameters {sorted(p)}")
        if jwt_cfg:
            jwt = _jwt(dict(jwt_cfg), self.gw)
        return AuthGuard(keys=keys, jwt=jwt)

    def _rate(self, p: dict[str, Any]) -> Guard:
        from bastion.guards.limits import RollingQuota, TokenBucket
        from bastion.guards.ratelimit import RateLimitGuard

        specs = list(p.pop("limits", []) or [])
        per = p.pop("per", None)
        if "rate" in p or "burst" in p:
            specs.append({"rate": p.pop("rate"), "burst": p.pop("burst"), "per": per})
        if "quota" in p:
            specs.append({"quota": p.pop("quota"), "window_s": p.pop("window_s"), "per": per})
        if p:
            raise TypeError(f"unknown parameters {sorted(p)}")
        limits: list[TokenBucket | RollingQuota] = []
        for s in specs:
            s = {k: v for k, v in dict(s).items() if v is not None}
            if "quota" in s:
                s["limit"] = s.pop("quota")
                limits.append(RollingQuota(**s))
            else:
                limits.append(TokenBucket(**s))
        if not limits:
            raise ConfigError("access.rate_limit needs 'rate' and 'burst', 'quota', or 'limits'.")
        return RateLimitGuard(limits, backend=self.limiter())


def _policy_args(p: dict[str, Any]) -> dict[str, Any]:
    if p.get("reverse_sigmoid") is not None:
        p["reverse_sigmoid"] = tuple(p["reverse_sigmoid"])
    return p


def _policy(value: Any) -> Any:
    from bastion.guards.obfuscation import ObfuscationPolicy

    return ObfuscationPolicy(**_policy_args(dict(value or {})))


def _jwt(cfg: dict[str, Any], gw: GatewayConfig) -> Any:
    from bastion.guards.jwt_tokens import JwtVerifier
    from bastion.guards.signing_keys import load_public_key

    secret_env = cfg.pop("hs256_secret_env", None)
    pub_file = cfg.pop("ed25519_public_key_file", None)
    if secret_env:
        secret = os.environ.get(secret_env, "")
        if not secret:
            raise ConfigError(f"The JWT secret variable {secret_env} is not set.")
        cfg["hs256_secret"] = secret.encode()
    if pub_file:
        cfg["ed25519_public_key"] = load_public_key(gw.resolve(pub_file))
    return JwtVerifier(**cfg)


def _signing_key(config: GatewayConfig) -> Ed25519PrivateKey | None:
    from bastion.guards.signing_keys import load_private_key, signing_key_from_env

    if config.signing_key_file:
        return load_private_key(config.resolve(config.signing_key_file))
    return signing_key_from_env()


def _store_url(config: GatewayConfig) -> str | None:
    if config.store_env:
        value = os.environ.get(config.store_env)
        if not value:
            raise ConfigError(f"The store URL variable {config.store_env} is not set.")
        return value
    if config.store and "://" not in config.store:
        return str(config.resolve(config.store))
    return config.store


def build_gateway(
    config: GatewayConfig, *, store_url: str | None = None, sinks: list[EventSink] | None = None
) -> Gateway:
    """Load every model, build its guards, open the store and the audit log."""
    key = _signing_key(config)
    db = GuardDB(
        store_url if store_url is not None else _store_url(config),
        synchronous=config.sqlite_synchronous,
        background_checkpoints=True,
    )
    metrics = MetricsSink()
    audit = AuditLog(db, signing_key=key)
    all_sinks: list[EventSink] = [audit, metrics, LoggingSink(), *(sinks or [])]
    builder = _Builder(config, db, key)
    models: dict[str, ServedModel] = {}
    try:
        for mc in config.models:
            target, ref = _load(mc, config)
            guards = [builder.build(mc, target, ref, spec) for spec in mc.guards]
            guarded = Guarded(
                target,
                guards,
                sinks=all_sinks,
                model=mc.name,
                model_version=mc.version,
                output=mc.output,
            )
            waits = [g for g in mc.guard_ids() if not builder.loop_safe(g)]
            execution = choose_execution(target, mc.execution, blocking_guards=waits)
            log.info(
                "model %s runs %s (%s)",
                mc.name,
                "inline" if execution.inline else "in the threadpool",
                execution.reason,
            )
            models[mc.name] = ServedModel(mc.name, target, guarded, ref, execution)
    except Exception:
        db.close()
        raise
    writer = AsyncAuditWriter(audit)
    wal = WalCheckpointer(db).start() if db.background_checkpoints else None
    return Gateway(config, models, db, metrics, audit, key, list(sinks or []), writer, wal)
