"""Persistence of assessment runs and findings: SQLite by default, PostgreSQL by URL.

Examples
--------
>>> from bastion.findings.run import RunRecord
>>> from bastion.store import diff_runs, open_store
>>> with open_store("sqlite://") as store:
...     store.save_run(RunRecord.new(name="nightly", seed=1, config_fingerprint="f"))
...     latest = store.latest_run("nightly")
>>> latest.name, diff_runs(latest, latest).new
('nightly', ())
"""

from bastion.store.diff import FieldChange, FindingDelta, RunDiff, diff_runs
from bastion.store.opening import open_store
from bastion.store.store import Store
from bastion.store.url import STORE_URL_ENV, default_store_path, redact_url, resolve_url

__all__ = [
    "STORE_URL_ENV",
    "FieldChange",
    "FindingDelta",
    "RunDiff",
    "Store",
    "default_store_path",
    "diff_runs",
    "open_store",
    "redact_url",
    "resolve_url",
]
