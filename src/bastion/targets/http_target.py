"""A model behind an HTTP JSON endpoint, as a black-box target.

:class:`HttpTarget` POSTs JSON and reads the answer through two small mappings:

``request_key`` (dotted path) and ``per_row``
    Where the inputs go in the body. Batched (default): the whole batch, as nested
    lists, at ``request_key`` -- ``{"instances": [[...], [...]]}``. Per row: one request
    per row with the row at ``request_key`` -- ``{"input": [...]}``. Constant fields
    (a model version, say) come from ``body``.
``response_path`` (dotted path; digits index lists) and ``response_type``
    Where the answer is. ``"probabilities"`` or ``"logits"``: one list of
    ``n_classes`` numbers per row (or a ``{class name: score}`` dict); ``"labels"``:
    one label per row, a class name or an index -- the target is then labels-only.

Transport. Connection errors, HTTP 429 and 5xx are retried up to ``retries`` times
with exponential backoff (``backoff * 2**attempt`` seconds); a ``Retry-After`` header
on 429 or 503 is honoured up to ``max_retry_after`` seconds. Other 4xx answers are
never retried: they mean the request is wrong. Redirects are not followed (the
auth header must not travel to another host). A read timeout is not retried either
(the model may be overloaded; raise ``timeout``). Retries are not charged to the
query budget; every row sent once is.

Secrets. With ``auth_env="MY_API_KEY"`` each request carries
``Authorization: Bearer <value of $MY_API_KEY>``; the value is read from the
environment at request time and is never stored, logged, shown by ``repr`` or
:meth:`describe`. Putting a credential header in ``headers`` is refused.

Examples
--------
>>> from bastion.targets import InputSpec
>>> from bastion.targets.http_target import HttpTarget
>>> t = HttpTarget("https://models.example.com/v1/predict",
...                input_spec=InputSpec(shape=(4,)), classes=["no", "yes"],
...                response_path="outputs.probabilities", auth_env="EXAMPLE_KEY")
>>> t.describe()["auth"]
{'header': 'Authorization', 'env': 'EXAMPLE_KEY', 'secret': '<redacted>'}
>>> sorted(c.value for c in t.capabilities)
['endpoint', 'labels', 'probabilities']
>>> t.close()
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np

from bastion.errors import TargetError, UsageError
from bastion.targets._common import LabelMapper, softmax
from bastion.targets._http_util import get_path, redact_url, retry_after_seconds, set_path
from bastion.targets.base import Capability, Target
from bastion.targets.spec import InputSpec

__all__ = ["HttpTarget", "redact_url"]

log = logging.getLogger(__name__)

ResponseType = Literal["probabilities", "logits", "labels"]

_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"}


def _sleep(seconds: float) -> None:
    """Wait between retries (a module function so tests can replace it)."""
    time.sleep(seconds)


class HttpTarget(Target):
    """A classifier reached by POSTing JSON to ``url``.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` endpoint.
    input_spec : InputSpec
    classes : sequence of str
    name : str or None
        Defaults to the URL's host.
    query_budget : int or None
    request_key : str
        Dotted path in the body where the inputs go.
    per_row : bool
        Send one request per row instead of one per batch.
    body : mapping or None
        Constant fields of every request body.
    response_path : str
        Dotted path of the scores or labels in the response.
    response_type : {"probabilities", "logits", "labels"}
    headers : mapping or None
        Extra headers (no credentials: use ``auth_env``).
    auth_env : str or None
        Name of the environment variable holding the API secret.
    auth_header : str
        Header that carries the secret.
    auth_scheme : str
        Prefix of the header value (``"Bearer"``); empty for the bare secret.
    timeout : float
        Seconds to wait for connect and for the answer.
    retries : int
        Extra attempts after a connection error, 429 or 5xx.
    backoff : float
        First retry delay in seconds, doubled each attempt.
    max_retry_after : float
        Longest ``Retry-After`` wait honoured, in seconds.
    batch_size : int
        Rows per request in batched mode.
    verify_tls : bool
        Check the server's TLS certificate.
    transport : httpx.BaseTransport or None
        Custom transport (for proxies or in-process test apps).
    """

    kind = "http"
    provides: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS, Capability.ENDPOINT}
    )

    def __init__(
        self,
        url: str,
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        name: str | None = None,
        query_budget: int | None = None,
        request_key: str = "instances",
        per_row: bool = False,
        body: Mapping[str, Any] | None = None,
        response_path: str = "predictions",
        response_type: ResponseType = "probabilities",
        headers: Mapping[str, str] | None = None,
        auth_env: str | None = None,
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer",
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        batch_size: int = 64,
        verify_tls: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"The endpoint URL must start with http:// or https://; got {url!r}.")
        super().__init__(
            name=name or parts.hostname or "http",
            input_spec=input_spec,
            classes=classes,
            query_budget=query_budget,
        )
        if response_type not in ("probabilities", "logits", "labels"):
            raise UsageError(
                "The 'response_type' option must be 'probabilities', 'logits' or 'labels'; got "
                f"{response_type!r}."
            )
        for key, low in (("retries", 0), ("batch_size", 1)):
            value = retries if key == "retries" else batch_size
            if not isinstance(value, int) or value < low:
                raise UsageError(f"The {key!r} option must be an integer >= {low}; got {value!r}.")
        if not timeout > 0:
            raise UsageError(
                f"The 'timeout' option must be a number of seconds > 0; got {timeout!r}."
            )
        extra = dict(headers or {})
        leaked = sorted(
            h for h in extra if h.lower() in _CREDENTIAL_HEADERS | {auth_header.lower()}
        )
        if leaked:
            raise UsageError(
                f"Header(s) {leaked} look like credentials; keep secrets out of the config by "
                "naming an environment variable in 'auth_env' instead."
            )
        self.url = url
        self.request_key = request_key
        self.per_row = per_row
        self.body = copy.deepcopy(dict(body or {}))
        self.response_path = response_path
        self.response_type: ResponseType = response_type
        self.headers = extra
        self.auth_env = auth_env
        self.auth_header = auth_header
        self.auth_scheme = auth_scheme
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.max_retry_after = float(max_retry_after)
        self.batch_size = batch_size
        self._mapper = LabelMapper(self.classes)
        self._client = httpx.Client(
            timeout=self.timeout, verify=verify_tls, transport=transport, follow_redirects=False
        )

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self.response_type == "labels":
            return frozenset({Capability.LABELS, Capability.ENDPOINT})
        if self.response_type == "logits":
            return self.provides
        return frozenset({Capability.LABELS, Capability.PROBABILITIES, Capability.ENDPOINT})

    # -- requests -------------------------------------------------------------------
    def _request_headers(self, authenticated: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.headers}
        if authenticated and self.auth_env:
            secret = os.environ.get(self.auth_env, "")
            if not secret:
                raise TargetError(
                    f"The environment variable {self.auth_env} that should hold the endpoint's "
                    "secret is not set; export it before running."
                )
            headers[self.auth_header] = (
                f"{self.auth_scheme} {secret}" if self.auth_scheme else secret
            )
        return headers

    def _body(self, rows: np.ndarray) -> dict[str, Any]:
        doc = copy.deepcopy(self.body)
        payload = rows[0].tolist() if self.per_row else rows.tolist()
        set_path(doc, self.request_key, payload)
        return doc

    def _send(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        try:
            return self._client.post(self.url, json=body, headers=headers)
        except httpx.ReadTimeout as err:
            raise TargetError(
                f"{redact_url(self.url)} did not answer within {self.timeout:g} s; raise the "
                "'timeout' option or check the service."
            ) from err

    def _post(self, body: dict[str, Any]) -> Any:
        headers = self._request_headers(authenticated=True)
        shown = redact_url(self.url)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            delay = self.backoff * 2**attempt
            try:
                response = self._send(body, headers)
            except httpx.TransportError as err:
                if last:
                    raise TargetError(
                        f"Could not reach {shown} after {attempt + 1} attempt(s) "
                        f"({type(err).__name__}); check that the service is up and the URL is "
                        "right."
                    ) from err
                log.warning("%s: %s; retrying in %.2f s", shown, type(err).__name__, delay)
                _sleep(delay)
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                if last:
                    raise TargetError(
                        f"{shown} answered HTTP {status} after {attempt + 1} attempt(s); the "
                        "service is failing or rate-limiting, so try later or lower the query "
                        "rate."
                    )
                hinted = retry_after_seconds(
                    response.headers.get("retry-after"), self.max_retry_after
                )
                wait = hinted if hinted is not None and status in (429, 503) else delay
                log.warning("%s answered HTTP %d; retrying in %.2f s", shown, status, wait)
                _sleep(wait)
                continue
            if 300 <= status < 400:
                raise TargetError(
                    f"{shown} redirected the request (HTTP {status}) to "
                    f"{redact_url(response.headers.get('location', '?'))}; put the final URL in "
                    "the config (redirects are not followed, so credentials stay with one host)."
                )
            if status >= 400:
                hint = (
                    "check the credentials in auth_env"
                    if status in (401, 403)
                    else "check the request mapping and the input spec"
                )
                raise TargetError(
                    f"{shown} rejected the request with HTTP {status} "
                    f"({response.text[:120].strip()!r}); {hint}."
                )
            try:
                return response.json()
            except ValueError as err:
                raise TargetError(
                    f"{shown} answered HTTP {status} with a body that is not JSON; check the URL."
                ) from err
        raise AssertionError("unreachable: the loop returns or raises")

    def send_raw(
        self, rows: np.ndarray, *, authenticated: bool = True
    ) -> tuple[int, dict[str, str]]:
        """Send one request, without retries; return (HTTP status, lower-cased headers).

        ``authenticated=False`` leaves out the auth header, so a probe can check that
        the endpoint refuses anonymous calls. Charges ``len(rows)`` queries; in
        ``per_row`` mode ``rows`` must hold exactly one row.
        """
        arr = self._prepare(rows)
        if self.per_row and len(arr) != 1:
            raise UsageError(
                f"This endpoint takes one row per request (per_row=True); send_raw got {len(arr)}."
            )
        self.budget.charge(len(arr))
        try:
            response = self._send(self._body(arr), self._request_headers(authenticated))
        except httpx.TransportError as err:
            raise TargetError(
                f"Could not reach {redact_url(self.url)} ({type(err).__name__}); check that the "
                "service is up and the URL is right."
            ) from err
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}

    # -- answers --------------------------------------------------------------------
    def _answers(self, x: np.ndarray) -> list[Any]:
        found: list[Any] = []
        if self.per_row:
            for i in range(len(x)):
                value = get_path(self._post(self._body(x[i : i + 1])), self.response_path)
                if (
                    isinstance(value, list)
                    and len(value) == 1
                    and isinstance(value[0], list | dict)
                ):
                    value = value[0]
                if self.response_type == "labels" and isinstance(value, list) and len(value) == 1:
                    value = value[0]
                found.append(value)
            return found
        for start in range(0, len(x), self.batch_size):
            chunk = x[start : start + self.batch_size]
            value = get_path(self._post(self._body(chunk)), self.response_path)
            if not isinstance(value, list) or len(value) != len(chunk):
                size = len(value) if isinstance(value, list) else type(value).__name__
                raise TargetError(
                    f"The endpoint answered {size} item(s) at {self.response_path!r} for "
                    f"{len(chunk)} rows; expected one per row, so check 'response_path'."
                )
            found.extend(value)
        return found

    def _scores(self, x: np.ndarray) -> np.ndarray:
        rows = []
        for item in self._answers(x):
            if isinstance(item, Mapping):
                row = np.zeros(self.n_classes)
                for key, score in item.items():
                    row[self._mapper.index(key)] = float(score)
                rows.append(row)
            elif isinstance(item, list) and all(isinstance(v, int | float) for v in item):
                rows.append(np.asarray(item, dtype=np.float64))
            else:
                raise TargetError(
                    f"The endpoint answered {str(item)[:60]!r} where a list of {self.n_classes} "
                    "scores was expected; check 'response_path' and 'response_type'."
                )
        try:
            return np.vstack(rows) if rows else np.zeros((0, self.n_classes))
        except ValueError as err:
            raise TargetError(
                "The endpoint answered score lists of different lengths; check 'response_path'."
            ) from err

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        if (
            self.response_type == "logits"
            and scores.ndim == 2
            and scores.shape[1] == self.n_classes
        ):
            return softmax(scores)
        return scores

    def _predict_labels(self, x: np.ndarray) -> np.ndarray:
        return self._mapper.to_indices(self._answers(x))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_classes)`` when the endpoint returns logits; charges ``n``."""
        self.require(Capability.LOGITS, who="Asking for logits")
        arr = self._prepare(x)
        self.budget.charge(len(arr))
        scores = self._scores(arr)
        self._check_scores(scores, len(arr))
        return scores

    # -- description ----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            url=redact_url(self.url),
            request_key=self.request_key,
            per_row=self.per_row,
            response_path=self.response_path,
            response_type=self.response_type,
            timeout=self.timeout,
            retries=self.retries,
            auth=(
                {"header": self.auth_header, "env": self.auth_env, "secret": "<redacted>"}
                if self.auth_env
                else None
            ),
        )
        return info

    def __repr__(self) -> str:
        auth = f", auth_env={self.auth_env!r}" if self.auth_env else ""
        return (
            f"HttpTarget(name={self.name!r}, url={redact_url(self.url)!r}, "
            f"classes={len(self.classes)}{auth})"
        )
