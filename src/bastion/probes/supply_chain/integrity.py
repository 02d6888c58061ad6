"""``supply_chain.artifact_integrity``: is the model file the one its producer signed?

Not an attack: a static check that the target's model file (``target.source_path``,
a file or a folder) and any extra ``paths`` carry a signature that verifies with a
public key the operator trusts, and that every file still matches what was signed
(OWASP ML06; Microsoft failure mode FM9; ATLAS AML.T0010 / AML.T0010.003, mitigated
by AML.M0013 code signing and AML.M0014 verifying ML artifacts). It runs
:func:`bastion.artifacts.signing.verify_path` for Bastion's Ed25519 manifests
(Bernstein et al., "High-speed high-security signatures", CHES 2011) and
:func:`bastion.artifacts.openssf.verify_openssf` for bundles of the OpenSSF
model-signing format, the same code as ``bastion artifacts verify``; files are
hashed in streaming shards, so large checkpoints need no more memory than small ones.

The signature file is ``<name>.manifest.json`` next to the file or folder (or
``<name>.sig`` holding an OpenSSF bundle), or the ``manifest`` parameter. One
finding per file or folder checked:

* **not vulnerable** when the signature verifies with ``public_key`` and every file
  matches;
* **vulnerable, low** when there is no signature at all: nothing proves this is the
  file its producer released (sign it: remedy ``supply_chain.sign_artifact``);
* **inconclusive** when a signature exists but no ``public_key`` is configured. The
  probe never takes a key from next to the artifact: whoever can replace the file
  can replace a key stored beside it;
* **vulnerable** (tampering, *important* on the severity bar) when the signature
  does not verify with the configured key (forged, altered, or signed by someone
  else), or when files were modified, added or removed since signing; the summary
  names each changed file.

The target's own file has the variant ``source``; files from ``paths`` keep their
path as the variant.

Examples
--------
>>> import tempfile, pathlib
>>> from bastion.artifacts.keys import generate_keypair, load_private_key
>>> from bastion.artifacts.signing import sign_path
>>> from bastion.probes import ProbeContext
>>> from bastion.targets import FakeTarget
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> pair = generate_keypair(tmp / "key")
>>> model = tmp / "model.safetensors"
>>> _ = model.write_bytes(b"weights")
>>> target = FakeTarget.linear(n_features=2, n_classes=2)
>>> target.source_path = model
>>> probe = ArtifactIntegrityProbe(public_key=str(pair.public_path))
>>> [f] = probe.run(target, None, ProbeContext())
>>> f.status.value, f.severity.value
('vulnerable', 'low')
>>> _ = sign_path(model, load_private_key(pair.private_path))
>>> probe.run(target, None, ProbeContext())[0].status.value
'not_vulnerable'
>>> _ = model.write_bytes(b"backdoored weights")
>>> [f] = probe.run(target, None, ProbeContext())
>>> f.status.value, f.severity.value, "model.safetensors" in f.summary
('vulnerable', 'important', True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from bastion.artifacts.keys import load_public_key
from bastion.artifacts.openssf import (
    OPENSSF_SUFFIX,
    is_openssf_bundle,
    openssf_available,
    verify_openssf,
)
from bastion.artifacts.signing import (
    VerifyResult,
    VerifyStatus,
    default_manifest_path,
    read_signed_manifest,
    verify_path,
)
from bastion.canonical import parse_strict
from bastion.catalog.severity import Effect, Effort
from bastion.errors import UsageError
from bastion.findings import CatalogRefs, Evidence, Finding, Metric, Severity, Status
from bastion.probes.base import Cost, Knowledge, Probe, ProbeMeta, ProbeParams
from bastion.probes.context import ProbeContext
from bastion.targets.base import Target

__all__ = ["ArtifactIntegrityParams", "ArtifactIntegrityProbe"]

_ID = "supply_chain.artifact_integrity"
_MAX_SIGNATURE_BYTES = 256 * 1024 * 1024
_NAMED = 10  # changed files named in a summary; the evidence lists up to _LISTED
_LISTED = 200


class ArtifactIntegrityParams(ProbeParams):
    """Parameters of :class:`ArtifactIntegrityProbe`."""

    public_key: str | None = Field(
        None,
        description="PEM public key of the signer (Ed25519 for Bastion manifests, ECDSA "
        "for OpenSSF bundles), obtained from the producer out of band.",
    )
    manifest: str | None = Field(
        None,
        description="Signature file of the target's model file (default: "
        "<name>.manifest.json or <name>.sig next to it).",
    )
    paths: list[str] = Field(default_factory=list, description="Extra files or folders to verify.")
    workers: int | None = Field(None, ge=1, description="Hashing threads (default: CPUs).")


@dataclass(frozen=True)
class _Signature:
    path: Path
    format: Literal["bastion", "openssf", "unknown"]


class ArtifactIntegrityProbe(Probe):
    """Verify the signature of the target's model file and name every changed file.

    Not an attack: a static check with Bastion's manifest verifier (see the module
    docstring). Needs only the file and the signer's public key, not queries.

    Parameters
    ----------
    public_key : str or None
        Path of the signer's PEM public key. Without it a signed file is
        ``inconclusive``; a key stored next to the artifact is never used.
    manifest : str or None
        The signature file of the target's model file (for a target without one,
        of the single entry in ``paths``); by default ``<name>.manifest.json`` or
        ``<name>.sig`` next to it.
    paths : list of str, default []
        Extra files or folders, each with its signature next to it.
    workers : int or None
        Hashing threads.
    """

    meta: ClassVar[ProbeMeta] = ProbeMeta(
        id=_ID,
        title="Model artifact integrity: signed, and unchanged since signing",
        catalog=CatalogRefs(
            owasp=["ML06"],
            failure_modes=["FM9"],
            atlas_techniques=["AML.T0010", "AML.T0010.003"],
            atlas_mitigations=["AML.M0013", "AML.M0014"],
        ),
        knowledge=Knowledge.WHITE_BOX,
        needs=frozenset(),
        cost=Cost.CHEAP,
        remedies=("supply_chain.sign_artifact", "AML.M0013", "AML.M0014"),
    )
    Params: ClassVar[type[ProbeParams]] = ArtifactIntegrityParams

    def run(self, target: Target, data: Any, context: ProbeContext) -> list[Finding]:
        """Verify each file or folder; one finding each."""
        p: ArtifactIntegrityParams = self.validated_params()
        source = getattr(target, "source_path", None)
        checks: list[tuple[str, Path]] = [] if source is None else [("source", Path(source))]
        checks += [(path, Path(path).expanduser()) for path in p.paths]
        if not checks:
            return [
                self.finding(
                    target,
                    context,
                    status=Status.INCONCLUSIVE,
                    summary=(
                        f"{target.name} does not say which file it was loaded from (no "
                        "source_path), so there is no artifact to verify; pass the model "
                        f"file in the 'paths' parameter of {_ID}."
                    ),
                )
            ]
        if p.manifest is not None and source is None and len(p.paths) != 1:
            raise UsageError(
                f"The 'manifest' parameter of {_ID} names the signature of one file, but "
                f"{len(p.paths)} paths were given and the target has no source_path; "
                "verify the others with their signatures next to them."
            )
        key_path = None if p.public_key is None else Path(p.public_key).expanduser()
        findings = []
        for index, (variant, path) in enumerate(checks):
            if not path.exists():
                raise UsageError(f"{_ID}: no file or folder at {path}; check the path.")
            given = Path(p.manifest).expanduser() if p.manifest and index == 0 else None
            findings.append(self._check(target, context, variant, path, given, key_path, p))
        return findings

    # -- one file or folder ----------------------------------------------------------
    def _check(
        self,
        target: Target,
        context: ProbeContext,
        variant: str,
        path: Path,
        given: Path | None,
        key_path: Path | None,
        p: ArtifactIntegrityParams,
    ) -> Finding:
        signature = _find_signature(path, given)
        if signature is None:
            return self.finding(
                target,
                context,
                status=Status.VULNERABLE,
                severity=Severity.LOW,
                variant=variant,
                severity_rationale=[
                    "Low: nothing was shown to be altered; the weakness is that no "
                    "signature exists, so an altered copy could not be told apart "
                    "(a missing control, rated low for an unsigned file)."
                ],
                summary=f"{path} is unsigned: nothing proves this is the file its producer "
                f"released (looked for {default_manifest_path(path).name} and "
                f"{default_manifest_path(path, OPENSSF_SUFFIX).name}). Sign it where it is "
                "produced (`bastion artifacts sign`, or the remedy supply_chain.sign_artifact) "
                "and verify it here with the producer's public key.",
                evidence=[_observation(path, None, None)],
            )
        why = _unchecked(path, signature, key_path)
        if why is not None:
            return self.finding(
                target,
                context,
                status=Status.INCONCLUSIVE,
                variant=variant,
                summary=why,
                evidence=[_observation(path, signature, None)],
            )
        assert key_path is not None  # _unchecked explains a missing key
        started = time.perf_counter()
        if signature.format == "openssf":
            result = verify_openssf(path, key_path, signature_path=signature.path)
        else:
            key = load_public_key(key_path)
            with context.progress(total=None, description=f"verifying {path.name}") as bar:
                result = verify_path(
                    path,
                    key,
                    manifest_path=signature.path,
                    workers=p.workers,
                    progress=bar.advance,
                    on_listing=lambda ls: bar.update(total=sum(f.size for f in ls.files)),
                )
        seconds = time.perf_counter() - started
        return self._verdict(target, context, variant, path, signature, result, seconds)

    def _verdict(
        self,
        target: Target,
        context: ProbeContext,
        variant: str,
        path: Path,
        signature: _Signature,
        result: VerifyResult,
        seconds: float,
    ) -> Finding:
        diff = result.diff
        metrics = [
            Metric(
                name="files_checked",
                value=result.files_checked,
                unit="files",
                definition="Files re-hashed and compared with the signed manifest (0 when "
                "the signature failed, since an unsigned list of hashes proves nothing, and "
                "for OpenSSF bundles, whose verifier does not count them).",
            ),
            Metric(
                name="changed_files",
                value=0 if diff is None else len(diff.modified + diff.added + diff.missing),
                unit="files",
                definition="Files modified, added or missing since signing.",
            ),
            Metric(
                name="seconds",
                value=round(seconds, 3),
                unit="s",
                definition="Wall-clock time of the verification (hashing included).",
            ),
        ]
        evidence = [_observation(path, signature, result)]
        key = f"key {result.key_id[:16]}…" if result.key_id else "the configured key"
        n = result.files_checked
        files = f"all {n} file(s)" if n else "every file"  # the OpenSSF verifier counts none
        if result.status is VerifyStatus.OK:
            return self.finding(
                target,
                context,
                status=Status.NOT_VULNERABLE,
                variant=variant,
                summary=f"{path}: the {signature.format} signature {signature.path.name} "
                f"verifies with {key} and {files} match it.",
                metrics=metrics,
                evidence=evidence,
            )
        if result.status is VerifyStatus.BAD_SIGNATURE:
            summary = (
                f"{path}: the signature {signature.path.name} does not verify with the "
                f"configured public key: {result.reason} Do not load the file; get it again "
                "from its producer, or check that public_key is the producer's key."
            )
        else:
            summary = (
                f"{path} was changed after it was signed ({key}): {_changes(result)}. Do not "
                "load it; get the signed version from its producer, and find out who could "
                "write to where it is stored."
            )
        return self.vulnerable_finding(
            target,
            context,
            effect=Effect.TAMPERING,
            extent=1.0,
            effort=Effort.MEDIUM,
            summary=summary,
            variant=variant,
            metrics=metrics,
            evidence=evidence,
            remedies=["AML.M0014", "AML.M0013"],
        )


def _find_signature(path: Path, given: Path | None) -> _Signature | None:
    """The signature file of ``path`` and its format; None when there is none."""
    if given is not None:
        if not given.is_file():
            raise UsageError(
                f"The manifest {given} given to {_ID} does not exist; check the 'manifest' "
                "parameter or leave it out to look next to the file."
            )
        return _Signature(given, "openssf" if _is_bundle(given) else "bastion")
    manifest = default_manifest_path(path)
    if manifest.is_file():
        return _Signature(manifest, "openssf" if _is_bundle(manifest) else "bastion")
    bundle = default_manifest_path(path, OPENSSF_SUFFIX)
    if bundle.is_file():
        # A ``.sig`` may come from another tool (GPG, cosign); only a bundle is ours.
        return _Signature(bundle, "openssf" if _is_bundle(bundle) else "unknown")
    return None


def _unchecked(path: Path, signature: _Signature, key_path: Path | None) -> str | None:
    """Why a signature that exists cannot be checked here; None when it can."""
    if signature.format == "unknown":
        return (
            f"{signature.path} lies next to {path} but is neither a Bastion manifest nor an "
            "OpenSSF model-signing bundle; verify it with the tool that made it, or point "
            f"the 'manifest' parameter of {_ID} at a Bastion or OpenSSF signature."
        )
    if key_path is None:
        claimed = _claimed_key_id(signature)
        who = f" (it names key id {claimed[:16]}…)" if claimed else ""
        return (
            f"{path} has a signature, {signature.path.name}{who}, but no public key is "
            f"configured, so it was not checked. Set the 'public_key' parameter of {_ID} to "
            f"the key its producer published (e.g. --probe-param {_ID}:public_key="
            "producer.pub); a key stored next to the artifact proves nothing, since whoever "
            "can replace the file can replace the key."
        )
    if signature.format == "openssf" and not openssf_available():
        return (
            f"{signature.path.name} is an OpenSSF model-signing bundle, but the model-signing "
            "package is not installed, so it was not checked; install it with "
            "`pip install model-signing pyopenssl`."
        )
    return None


def _is_bundle(path: Path) -> bool:
    """True when ``path`` holds an OpenSSF (Sigstore) bundle; other files are not read."""
    try:
        if path.stat().st_size > _MAX_SIGNATURE_BYTES:
            return False  # the manifest reader refuses it with a reason
        document = parse_strict(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise UsageError(f"Cannot read the signature {path}: {err.strerror}.") from None
    except (UnicodeDecodeError, ValueError):
        return False
    return is_openssf_bundle(document)


def _claimed_key_id(signature: _Signature) -> str | None:
    """The key id a Bastion manifest names (unverified); None if unreadable."""
    if signature.format != "bastion":
        return None
    try:
        return read_signed_manifest(signature.path).key_id
    except (UsageError, ValueError):
        return None


def _changes(result: VerifyResult) -> str:
    diff = result.diff
    if diff is None:  # pragma: no cover - a mismatch always carries its diff
        return result.reason
    parts = []
    for label, paths in (
        ("modified", diff.modified),
        ("added", diff.added),
        ("missing", diff.missing),
    ):
        if paths:
            named = ", ".join(paths[:_NAMED])
            more = f" and {len(paths) - _NAMED} more" if len(paths) > _NAMED else ""
            parts.append(f"{label} {named}{more}")
    return "; ".join(parts) or result.reason


def _observation(path: Path, signature: _Signature | None, result: VerifyResult | None) -> Evidence:
    data: dict[str, Any] = {
        "path": str(path),
        "signature": None if signature is None else str(signature.path),
        "format": None if signature is None else signature.format,
    }
    if result is not None:
        data.update(
            status=result.status.value,
            reason=result.reason,
            key_id=result.key_id,
            files_checked=result.files_checked,
        )
        if result.diff is not None:
            data["changes"] = {k: v[:_LISTED] for k, v in result.diff.to_dict().items()}
    return Evidence(
        kind="observation",
        description="What was verified, against which signature, and what differs.",
        data=data,
    )
