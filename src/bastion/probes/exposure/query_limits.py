"""``exposure.query_limits``: does an HTTP model endpoint authenticate and rate-limit callers?

Model stealing (Tramèr et al., USENIX Security 2016), membership inference and
black-box evasion all need many queries. An endpoint that answers anyone, as fast as
they can ask, gives them those queries for free, and anyone can run up its bill
(ATLAS AML.T0034, Cost Harvesting). The mitigations are access control (ATLAS
AML.M0019) and a query budget or rate limit (ATLAS AML.M0004).

The probe is not an attack. It sends one request *without* credentials and then a
short, bounded burst of ordinary requests, and reports what it observed: whether the
unauthenticated request was answered, how many requests the burst sent, after how
many the first ``429 Too Many Requests`` came back, and which rate-limit headers
(``Retry-After``, ``RateLimit-*``, ``X-RateLimit-*``) the endpoint sent.

Because the burst is load on someone's service, the probe only sends it to a
loopback host (``127.0.0.1``, ``::1``, ``localhost``) unless ``allow_remote=True``
is given, which should be done only for an endpoint you are authorised to test.

Examples
--------
>>> from bastion.targets import FakeTarget
>>> probe = QueryLimitsProbe(burst=20)
>>> print(probe.not_applicable_reason(FakeTarget.linear(n_features=2, n_classes=2)))
exposure.query_limits applies to HTTP endpoints only; this fake target has no endpoint
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field

from bastion.catalog.severity import Effect
from bastion.data.dataset import Dataset
from bastion.errors import QueryBudgetExceeded
from bastion.findings import CatalogRefs, Evidence, Finding, Metric, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext, ProgressBar
from bastion.targets.base import Capability, SupportsEndpoint, Target

__all__ = ["BurstResult", "QueryLimitsParams", "QueryLimitsProbe", "is_loopback_url"]

_RATE_HEADER_PREFIXES = ("ratelimit", "x-ratelimit", "x-rate-limit", "retry-after")
_AUTH_REFUSED = frozenset({401, 403, 407})
_MIN_BURST = 20  # fewer answered requests than this (when cut short) prove nothing


class QueryLimitsParams(ProbeParams):
    """Parameters of :class:`QueryLimitsProbe`."""

    burst: int = Field(60, ge=1, le=500, description="Most requests in the burst.")
    max_seconds: float = Field(
        10.0, gt=0, le=120, description="Longest the burst may last, in seconds."
    )
    allow_remote: bool = Field(
        False,
        description="Also send to a host that is not loopback; only for endpoints you are "
        "authorised to load-test.",
    )


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is ``localhost`` or a loopback IP address.

    No name is resolved: a host name other than ``localhost`` counts as remote.

    Examples
    --------
    >>> is_loopback_url("http://127.0.0.1:8000/predict"), is_loopback_url("http://[::1]/")
    (True, True)
    >>> is_loopback_url("https://models.example.com/v1")
    False
    """
    host = (urlsplit(url).hostname or "").lower()
    if host in {"localhost", "localhost."} or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rate_headers(headers: dict[str, str]) -> dict[str, str]:
    """Rate-limit headers among ``headers``, names lower-cased."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_RATE_HEADER_PREFIXES)}


@dataclass
class BurstResult:
    """What the burst observed."""

    sent: int = 0
    ok: int = 0
    first_429_after: int | None = None
    statuses: dict[int, int] = field(default_factory=dict)
    rate_headers: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0
    stopped_by: str = "burst size"

    @property
    def requests_per_second(self) -> float:
        """Observed request rate."""
        return self.sent / self.elapsed if self.elapsed > 0 else float(self.sent)


class QueryLimitsProbe(Probe):
    """Check an HTTP model endpoint for authentication and rate limiting.

    Not an attack: it measures whether the controls that slow down query-based
    attacks (model stealing, Tramèr et al., 2016; membership inference, Shokri et
    al., 2017) are in place. One unauthenticated request checks access control
    (vulnerable if it is answered with 2xx); a burst of at most ``burst`` requests in
    at most ``max_seconds`` checks for a rate limit (vulnerable if every request is
    answered and no ``429`` or rate-limit header appears). It returns two findings,
    variants ``authentication`` and ``rate_limit``.

    Parameters
    ----------
    burst : int, default 60
        Most requests in the burst (1..500).
    max_seconds : float, default 10
        Longest the burst may run (up to 120 s).
    allow_remote : bool, default False
        Send to a non-loopback host. Off by default because a burst is load on a
        service Bastion cannot tell you own; turn it on only with permission.

    Examples
    --------
    >>> QueryLimitsProbe.meta.needs == frozenset({Capability.ENDPOINT})
    True
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id="exposure.query_limits",
        title="Query limits: endpoint authentication and rate limiting",
        catalog=CatalogRefs(
            owasp=["ML05"],
            failure_modes=["FM5"],
            atlas_techniques=["AML.T0040", "AML.T0034", "AML.T0024.002", "AML.T0029"],
            atlas_mitigations=["AML.M0019", "AML.M0004"],
        ),
        knowledge=Knowledge.BLACK_BOX,
        needs=frozenset({Capability.ENDPOINT}),
        cost=Cost.CHEAP,
        remedies=("AML.M0019", "AML.M0004"),
        alternative="applies to HTTP endpoints only",
    )
    Params: ClassVar[type[ProbeParams]] = QueryLimitsParams

    _AUTH_CATALOG: ClassVar[CatalogRefs] = CatalogRefs(
        owasp=["ML05"],
        failure_modes=["FM5"],
        atlas_techniques=["AML.T0040"],
        atlas_mitigations=["AML.M0019"],
    )
    _RATE_CATALOG: ClassVar[CatalogRefs] = CatalogRefs(
        owasp=["ML05"],
        failure_modes=["FM5"],
        atlas_techniques=["AML.T0040", "AML.T0034", "AML.T0024.002", "AML.T0029"],
        atlas_mitigations=["AML.M0004"],
    )

    def not_applicable_reason(self, target: Target) -> str | None:
        """Why the probe cannot run on ``target`` (it needs an HTTP endpoint), or None."""
        if Capability.ENDPOINT in target.capabilities and isinstance(target, SupportsEndpoint):
            return None
        return f"{self.meta.id} {self.meta.alternative}; this {target.kind} target has no endpoint"

    def run(self, target: Target, data: Dataset, context: ProbeContext) -> list[Finding]:
        """Send one unauthenticated request and a bounded burst; report both."""
        p: QueryLimitsParams = self.validated_params()
        target.require(Capability.ENDPOINT, who=self.meta.id)
        endpoint = cast(SupportsEndpoint, target)
        url = endpoint.url
        if not p.allow_remote and not is_loopback_url(url):
            return self._refused(target, context, url)
        row, _ = data.test_sample(1, seed=context.seed)
        with context.progress(total=1 + p.burst, description="query limits") as bar:
            status, headers = endpoint.send_raw(row, authenticated=False)
            bar.advance(1)
            auth = self._auth_finding(target, context, status, headers)
            burst = self._burst(endpoint, row, p, bar)
        return [auth, self._rate_finding(target, context, p, burst)]

    # -- measurement ------------------------------------------------------------------
    def _burst(
        self, endpoint: SupportsEndpoint, row: np.ndarray, p: QueryLimitsParams, bar: ProgressBar
    ) -> BurstResult:
        result = BurstResult()
        start = time.monotonic()
        for _ in range(p.burst):  # bounded by the burst size and by max_seconds
            if time.monotonic() - start >= p.max_seconds:
                result.stopped_by = "time limit"
                break
            try:
                status, headers = endpoint.send_raw(row, authenticated=True)
            except QueryBudgetExceeded:
                result.stopped_by = "query budget"
                break
            result.sent += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.rate_headers.update(_rate_headers(headers))
            bar.advance(1)
            if 200 <= status < 300:
                result.ok += 1
            if status == 429:
                result.first_429_after = result.ok
                result.stopped_by = "429 Too Many Requests"
                break
            if status in _AUTH_REFUSED:
                result.stopped_by = f"authenticated request refused ({status})"
                break
        result.elapsed = time.monotonic() - start
        return result

    # -- findings ---------------------------------------------------------------------
    def _refused(self, target: Target, context: ProbeContext, url: str) -> list[Finding]:
        host = urlsplit(url).hostname or url
        summary = (
            f"Nothing was sent: {host} is not a loopback host, and this probe sends a burst "
            "of requests only to loopback unless allow_remote=True; set it only for an "
            "endpoint you are authorised to load-test."
        )
        metric = Metric(name="requests_sent", value=0, unit="requests", definition="Requests sent.")
        return [
            self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=summary,
                variant=variant,
                catalog=refs,
                metrics=[metric],
            )
            for variant, refs in (
                ("authentication", self._AUTH_CATALOG),
                ("rate_limit", self._RATE_CATALOG),
            )
        ]

    def _auth_finding(
        self, target: Target, context: ProbeContext, status: int, headers: dict[str, str]
    ) -> Finding:
        metrics = [
            Metric(
                name="unauthenticated_status",
                value=status,
                definition="HTTP status of one prediction request sent without credentials.",
            ),
            Metric(
                name="unauthenticated_answered",
                value=200 <= status < 300,
                definition="Whether that request was answered with a 2xx status.",
            ),
        ]
        evidence = [
            Evidence(
                kind="observation",
                description="Response to the request sent without credentials.",
                data={"status": status, "headers": dict(headers)},
            )
        ]
        common: dict[str, Any] = {
            "variant": "authentication",
            "catalog": self._AUTH_CATALOG,
            "metrics": metrics,
            "evidence": evidence,
        }
        if 200 <= status < 300:
            return self.vulnerable_finding(
                target,
                context,
                effect=Effect.MISSING_CONTROL,
                extent=1.0,
                owasp=self._AUTH_CATALOG.owasp,
                summary=(
                    f"{target.name} answered a request without credentials (HTTP {status}); "
                    "anyone who can reach it can query the model. Require authentication."
                ),
                remedies=["AML.M0019"],
                **common,
            )
        if status in _AUTH_REFUSED:
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=f"{target.name} refused a request without credentials (HTTP {status}).",
                **common,
            )
        return self.finding(
            target,
            context,
            status=Status.INCONCLUSIVE,
            summary=(
                f"A request without credentials got HTTP {status}, which neither answers nor "
                "refuses for lack of credentials; check the endpoint's request format."
            ),
            **common,
        )

    def _rate_finding(
        self, target: Target, context: ProbeContext, p: QueryLimitsParams, b: BurstResult
    ) -> Finding:
        metrics = [
            Metric(
                name="requests_sent",
                value=b.sent,
                unit="requests",
                definition=f"Authenticated requests sent in the burst (at most {p.burst} in "
                f"at most {p.max_seconds:g} s, one row each).",
            ),
            Metric(
                name="requests_answered",
                value=b.ok,
                unit="requests",
                definition="Burst requests answered with a 2xx status.",
            ),
            Metric(
                name="first_429_after",
                value=b.first_429_after,
                unit="requests",
                definition="Answered requests before the first 429 Too Many Requests (None: "
                "no 429 seen).",
            ),
            Metric(
                name="requests_per_second",
                value=round(b.requests_per_second, 2),
                unit="requests/s",
                definition="Requests sent divided by the burst's wall-clock duration.",
            ),
            Metric(
                name="rate_limit_headers",
                value=", ".join(sorted(b.rate_headers)) or None,
                definition="Rate-limit headers seen, lower-cased (retry-after, ratelimit-*, "
                "x-ratelimit-*).",
            ),
        ]
        evidence = [
            Evidence(
                kind="observation",
                description="What the burst observed.",
                data={
                    "statuses": {str(k): v for k, v in sorted(b.statuses.items())},
                    "rate_limit_headers": b.rate_headers,
                    "elapsed_seconds": round(b.elapsed, 3),
                    "stopped_by": b.stopped_by,
                },
            )
        ]
        common: dict[str, Any] = {
            "variant": "rate_limit",
            "catalog": self._RATE_CATALOG,
            "metrics": metrics,
            "evidence": evidence,
        }
        if b.first_429_after is not None:
            retry = b.rate_headers.get("retry-after")
            after = f", Retry-After {retry}" if retry else ""
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=(
                    f"{target.name} enforces a rate limit: HTTP 429 after {b.first_429_after} "
                    f"answered request(s) at {b.requests_per_second:.0f} requests/s{after}."
                ),
                **common,
            )
        if b.rate_headers and b.ok == b.sent:
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                summary=(
                    f"{target.name} advertises a rate limit ({', '.join(sorted(b.rate_headers))})"
                    f" that {b.sent} request(s) did not reach; raise 'burst' to see it enforced."
                ),
                **common,
            )
        if b.stopped_by in ("time limit", "query budget") and b.sent < min(p.burst, _MIN_BURST):
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=(
                    f"Only {b.sent} request(s) could be sent before the {b.stopped_by} stopped "
                    f"the burst, too few to tell whether a rate limit exists; raise "
                    f"{'max_seconds' if b.stopped_by == 'time limit' else 'the query budget'}."
                ),
                **common,
            )
        if b.sent == 0 or b.ok < b.sent:
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                summary=(
                    f"The burst sent {b.sent} request(s) and {b.ok} were answered (stopped by "
                    f"{b.stopped_by}); errors other than 429 say nothing about a rate limit, "
                    "so check the endpoint and its credentials."
                ),
                **common,
            )
        # Extent grows with how much the burst got through: 60 answered requests at
        # full speed already show the absence of a limit; fewer show it less strongly.
        extent = min(1.0, 0.5 + 0.5 * b.ok / 60)
        return self.vulnerable_finding(
            target,
            context,
            effect=Effect.MISSING_CONTROL,
            extent=extent,
            owasp=self._RATE_CATALOG.owasp,
            summary=(
                f"{target.name} answered all {b.sent} requests of a burst at "
                f"{b.requests_per_second:.0f} requests/s with no 429 and no rate-limit header; "
                "nothing slows down query-based stealing or inference. Add a per-caller rate "
                "limit or query budget."
            ),
            remedies=["AML.M0004"],
            **common,
        )
