"""REACT: runtime guards and the pipeline that runs them.

``Guarded(target, guards=[...], sinks=[...])`` puts a target behind a pipeline of
guards, in-process or inside the gateway. See docs/guards.md for each guard, what it
protects against and what it costs.

Only the contract (:mod:`bastion.guards.base`) is imported eagerly: the plugin
registry imports it, and the guards pull in SQLAlchemy, cryptography, PyJWT and
SciPy, which the rest of Bastion should not pay for. Everything else is loaded on
first use.
"""

import importlib
from typing import Any

from bastion.guards.base import Action, Decision, Guard, GuardMeta, GuardRequest, GuardResponse

_LAZY = {
    "AbstentionGuard": "bastion.guards.abstention",
    "ApiKeyInfo": "bastion.guards.apikeys",
    "ApiKeyStore": "bastion.guards.apikeys",
    "AuditLog": "bastion.guards.audit",
    "AuditVerification": "bastion.guards.audit_verify",
    "AuthGuard": "bastion.guards.auth",
    "CredentialRejected": "bastion.guards.errors",
    "DriftGuard": "bastion.guards.drift",
    "DriftMonitor": "bastion.guards.drift",
    "EventSink": "bastion.guards.events",
    "ExtractionMonitorGuard": "bastion.guards.extraction",
    "Extras": "bastion.guards.outcome",
    "GuardDB": "bastion.guards.db",
    "GuardOutcome": "bastion.guards.outcome",
    "Guarded": "bastion.guards.pipeline",
    "InputValidationGuard": "bastion.guards.validation",
    "JwtVerifier": "bastion.guards.jwt_tokens",
    "LoggingSink": "bastion.guards.events",
    "MemoryLimiter": "bastion.guards.limits",
    "MemoryReviewQueue": "bastion.guards.review",
    "MemorySink": "bastion.guards.events",
    "MetricsSink": "bastion.guards.events",
    "NewApiKey": "bastion.guards.apikeys",
    "OODDetector": "bastion.guards.ood",
    "OODGuard": "bastion.guards.ood",
    "ObfuscationGuard": "bastion.guards.obfuscation",
    "ObfuscationPolicy": "bastion.guards.obfuscation",
    "OutputSigner": "bastion.guards.signing",
    "PradaMonitor": "bastion.guards.extraction",
    "RateLimitGuard": "bastion.guards.ratelimit",
    "RedisLimiter": "bastion.guards.limits_redis",
    "RequestDenied": "bastion.guards.errors",
    "RollingQuota": "bastion.guards.limits",
    "SignatureInvalid": "bastion.guards.errors",
    "StoreReviewQueue": "bastion.guards.review",
    "TokenBucket": "bastion.guards.limits",
    "build_guard": "bastion.guards.config",
    "time_calls": "bastion.guards.timing",
    "time_guards": "bastion.guards.timing",
    "build_guards": "bastion.guards.config",
    "canonical_json": "bastion.guards.canonical",
    "load_pepper": "bastion.guards.apikeys",
    "measure_obfuscation_cost": "bastion.guards.obfuscation",
    "request_digest": "bastion.guards.canonical",
    "verify_audit_log": "bastion.guards.audit_verify",
    "verify_signed_output": "bastion.guards.signing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bastion.guards' has no attribute {name!r}")


__all__ = [
    "AbstentionGuard",
    "Action",
    "ApiKeyInfo",
    "ApiKeyStore",
    "AuditLog",
    "AuditVerification",
    "AuthGuard",
    "CredentialRejected",
    "Decision",
    "DriftGuard",
    "DriftMonitor",
    "EventSink",
    "ExtractionMonitorGuard",
    "Extras",
    "Guard",
    "GuardDB",
    "GuardMeta",
    "GuardOutcome",
    "GuardRequest",
    "GuardResponse",
    "Guarded",
    "InputValidationGuard",
    "JwtVerifier",
    "LoggingSink",
    "MemoryLimiter",
    "MemoryReviewQueue",
    "MemorySink",
    "MetricsSink",
    "NewApiKey",
    "OODDetector",
    "OODGuard",
    "ObfuscationGuard",
    "ObfuscationPolicy",
    "OutputSigner",
    "PradaMonitor",
    "RateLimitGuard",
    "RedisLimiter",
    "RequestDenied",
    "RollingQuota",
    "SignatureInvalid",
    "StoreReviewQueue",
    "TokenBucket",
    "build_guard",
    "build_guards",
    "canonical_json",
    "load_pepper",
    "measure_obfuscation_cost",
    "request_digest",
    "time_calls",
    "time_guards",
    "verify_audit_log",
    "verify_signed_output",
]
