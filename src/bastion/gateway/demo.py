"""``bastion serve --demo``: the digits model behind a sensible default pipeline.

:func:`prepare_demo` writes, under ``.bastion/`` of the working directory, what a
first run needs and nothing else: a random API-key pepper (``gateway-pepper``, mode
0600), an Ed25519 signing key (``gateway-signing.pem``) and the gateway config
(``gateway-demo.yaml``). Existing files are reused, so keys created earlier keep
working. The pipeline: API keys, 20 rows/s (bursts of 100) and 50,000 rows a day per
caller, input validation, OOD and drift flags, PRADA extraction monitoring, signed
outputs, and the audit log.

Examples
--------
>>> import tempfile
>>> from bastion.gateway.config import load_gateway_config
>>> with tempfile.TemporaryDirectory() as d:
...     paths = prepare_demo(Path(d))
...     cfg = load_gateway_config(paths.config)
>>> cfg.models[0].guard_ids()[:3]
['access.authentication', 'access.rate_limit', 'input.validation']
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEMO_CONFIG", "DemoPaths", "prepare_demo"]

DEMO_CONFIG = """\
# Written by `bastion serve --demo`; edit freely and serve with --config.
store: bastion.db
signing_key_file: gateway-signing.pem
redis_url_env: BASTION_REDIS_URL      # used when set: shared limits for several workers
models:
  - name: digits
    demo: digits
    version: demo-1
    guards:
      - access.authentication
      - {id: access.rate_limit, rate: 20, burst: 100, quota: 50000, window_s: 86400,
         per: principal}
      - input.validation
      - {id: input.ood, method: knn, fpr: 0.01, action: flag}
      - {id: input.drift, window: 200, stride: 50, false_alarm_every: 2000}
      - {id: extraction.prada, action: flag, min_distances: 100, test_every: 5}
      - output.signature
"""


@dataclass(frozen=True)
class DemoPaths:
    """Files the demo uses."""

    folder: Path
    config: Path
    pepper: Path
    signing_key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def prepare_demo(root: Path | None = None) -> DemoPaths:
    """Create (or reuse) the demo's pepper, signing key and config under ``root/.bastion``."""
    from bastion.guards.signing_keys import write_signing_key

    folder = (root or Path.cwd()) / ".bastion"
    folder.mkdir(parents=True, exist_ok=True)
    paths = DemoPaths(
        folder=folder,
        config=folder / "gateway-demo.yaml",
        pepper=folder / "gateway-pepper",
        signing_key=folder / "gateway-signing.pem",
    )
    if not paths.pepper.exists():
        _write_private(paths.pepper, secrets.token_urlsafe(32).encode())
    if not paths.signing_key.exists():
        write_signing_key(paths.signing_key)
    if not paths.config.exists():
        paths.config.write_text(DEMO_CONFIG, encoding="utf-8")
    return paths
