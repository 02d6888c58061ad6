"""Finding the finding to triage: in the results store, or in a JSON file.

A reference is matched against a run's findings by, in order: the finding key
(``probe|target|variant``), its fingerprint or a unique prefix of it (at least 4 hex
digits), the key without the variant, or the probe id. A JSON file may hold one finding
(as ``Finding.model_dump_json`` writes it) or a whole report (``bastion-report.json``).

Examples
--------
>>> from bastion.findings import Finding, Status
>>> from bastion.findings.run import RunRecord
>>> f = Finding(probe_id="robustness.noise", title="t", target="cnn", variant="gaussian",
...             status=Status.VULNERABLE, summary="s")
>>> run = RunRecord.new(name="r", seed=0, config_fingerprint="x", findings=[f])
>>> select(run.findings, "robustness.noise|cnn|gaussian", "run r").fingerprint == f.fingerprint
True
>>> select(run.findings, f.fingerprint[:6], "run r").variant
'gaussian'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from bastion.errors import UsageError
from bastion.findings import Finding
from bastion.findings.run import RunRecord
from bastion.store import open_store

__all__ = ["from_file", "from_store", "select"]

_HEX = re.compile(r"[0-9a-f]{4,16}")
_SHOWN = 8


def _describe(findings: Sequence[Finding]) -> str:
    shown = [f"{f.key} ({f.fingerprint})" for f in findings[:_SHOWN]]
    more = len(findings) - _SHOWN
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def select(findings: Sequence[Finding], ref: str, where: str) -> Finding:
    """The one finding ``ref`` names.

    Raises
    ------
    UsageError
        If nothing matches or several findings do; the message lists candidates.
    """
    token = ref.strip()
    if not findings:
        raise UsageError(f"{where} has no findings to triage.")
    tests: list[Callable[[Finding], bool]] = [
        lambda f: f.key == token,
        lambda f: f.fingerprint == token.lower(),
        lambda f: bool(_HEX.fullmatch(token.lower())) and f.fingerprint.startswith(token.lower()),
        lambda f: f.key.rsplit("|", 1)[0] == token,
        lambda f: f.probe_id == token,
    ]
    for test in tests:
        hits = [f for f in findings if test(f)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise UsageError(
                f"{ref!r} matches {len(hits)} findings in {where}; give the full key or "
                f"fingerprint of one: {_describe(hits)}."
            )
    raise UsageError(
        f"No finding {ref!r} in {where}; give a key or fingerprint from: "
        f"{_describe(list(findings))}."
    )


def from_file(path: Path, ref: str | None = None) -> tuple[Finding, str]:
    """A finding from a JSON file: the finding itself, or one of a report's findings.

    Raises
    ------
    UsageError
        If the file cannot be read, is neither a finding nor a report, or a report holds
        several findings and ``ref`` does not pick one.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"Cannot read {path}: {err}.") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path} is not JSON (line {err.lineno}: {err.msg}).") from None
    try:
        if isinstance(data, dict) and "findings" in data:
            record = RunRecord.model_validate(data)
            where = f"report {path} (run {record.run_id})"
            if ref is None:
                vulnerable = [f for f in record.findings if f.is_vulnerable]
                pool = vulnerable if len(vulnerable) == 1 else record.findings
                if len(pool) == 1:
                    return pool[0], where
                raise UsageError(
                    f"{where} holds {len(record.findings)} findings; pick one with "
                    f"--finding: {_describe(record.findings)}."
                )
            return select(record.findings, ref, where), where
        return Finding.model_validate(data), f"file {path}"
    except ValidationError as err:
        first = err.errors()[0]
        at = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise UsageError(
            f"{path} is neither a Bastion finding nor a report: {at}: {first['msg']}."
        ) from None


def from_store(ref: str, *, store_url: str | None, run: str | None) -> tuple[Finding, str]:
    """A finding from the latest run in the results store, or from run ``run``.

    Raises
    ------
    StoreError
        If the store cannot be opened or holds no run.
    UsageError
        If the reference matches no finding or several.
    """
    from bastion.errors import StoreError

    with open_store(store_url, create=False) as store:
        if run is None or run.strip().lower() == "latest":
            record: RunRecord | None = store.latest_run()
            if record is None:
                raise StoreError(
                    f"The store at {store.url} holds no runs yet; run an assessment first."
                )
        else:
            record = store.get_run(run)
        where = f"run {record.run_id} ({record.name}) in {store.url}"
    return select(record.findings, ref, where), where
