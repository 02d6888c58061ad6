"""Sign the target's model file, so that any later change to it can be detected.

A signature over a list of file digests lets whoever loads a model check that it is
the file its producer released (MITRE ATLAS AML.M0013 *Code Signing* and AML.M0014
*Verify ML Artifacts*, against AML.T0010.003 supply-chain compromise through a
model; OWASP ML06). This remedy signs ``target.source_path`` (a file or a folder)
with :func:`bastion.artifacts.signing.sign_path`: a manifest of every file's SHA-256,
signed with Ed25519 (Bernstein et al., "High-speed high-security signatures",
CHES 2011), written as ``<name>.manifest.json`` next to the file (or in
``output_dir``). ``format: openssf`` writes an OpenSSF model-signing bundle
(``<name>.sig``) with an ECDSA key instead (:mod:`bastion.artifacts.openssf`).

Signing blesses whatever the file holds now, so the remedy refuses to:

* sign a file the artifact scanner does not prove safe to load (``scan: true``, the
  default; ``allow`` passes reviewed exceptions): a signature on a trojaned pickle
  only makes it look trustworthy;
* replace an existing signature (unless ``overwrite: true``): a file whose signature
  no longer matches may have been tampered with, and re-signing it would hide that.

The private key is read from ``private_key`` (a PEM path); an encrypted key's
passphrase comes only from the environment variable named by ``passphrase_env``,
never from the configuration, following :mod:`bastion.artifacts.keys`. ``changes``
records where the signature went, the key id, the number of files and bytes hashed
and the manifest digest, never key material or the key's path. The target is
returned unchanged.

Verified by ``supply_chain.artifact_integrity``, which must be given the matching
public key: ``bastion harden CONFIG --remedy supply_chain.sign_artifact --param
private_key=signer.key --probe-param
supply_chain.artifact_integrity:public_key=signer.key.pub``. Before, the unsigned
file is a low finding; after, the signature verifies and the finding is gone.

Examples
--------
>>> import tempfile, pathlib
>>> from bastion.artifacts.keys import generate_keypair
>>> from bastion.probes import ProbeContext
>>> from bastion.targets import FakeTarget
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> pair = generate_keypair(tmp / "signer.key")
>>> model = tmp / "model.safetensors"
>>> _ = model.write_bytes(b'\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\x00{}      ')
>>> target = FakeTarget.linear(n_features=2, n_classes=2)
>>> target.source_path = model
>>> result = SignArtifact(private_key=str(pair.private_path)).apply(target, None, ProbeContext())
>>> result.target is target, result.changes["files"], pathlib.Path(result.changes["manifest"]).name
(True, 1, 'model.safetensors.manifest.json')
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.artifacts.keys import (
    key_id,
    load_private_key,
    load_public_key,
    passphrase_from_env,
    public_path_for,
)
from bastion.artifacts.openssf import OPENSSF_SUFFIX, sign_openssf
from bastion.artifacts.scanner import scan_path
from bastion.artifacts.signing import default_manifest_path, relative_inside, sign_path
from bastion.artifacts.tree_hash import list_tree
from bastion.data.dataset import Dataset
from bastion.errors import TargetError, UsageError
from bastion.findings import CatalogRefs
from bastion.probes.context import ProbeContext
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.targets.base import Target

__all__ = ["SignArtifact", "SignArtifactParams"]

log = logging.getLogger(__name__)
_ID = "supply_chain.sign_artifact"
_PROBE = "supply_chain.artifact_integrity"
_SECRET_WORDS = ("passphrase", "password", "secret")


class SignArtifactParams(BaseModel):
    """Parameters of :class:`SignArtifact`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    private_key: str
    passphrase_env: str | None = None
    output_dir: str | None = None
    format: Literal["bastion", "openssf"] = "bastion"
    overwrite: bool = False
    scan: bool = True
    allow: list[str] = Field(default_factory=list)
    workers: int | None = Field(None, ge=1)


def _format(owner: str, err: ValidationError) -> str:
    """One sentence per problem that never repeats a value (it could be a secret)."""
    parts = []
    for problem in err.errors():
        name = ".".join(str(p) for p in problem["loc"]) or "parameters"
        if problem["type"] == "extra_forbidden" and any(w in name.lower() for w in _SECRET_WORDS):
            parts.append(
                f"{owner} never takes a passphrase in its parameters, where it would be stored "
                "with the configuration; export it in an environment variable and name that "
                "variable with passphrase_env"
            )
        elif problem["type"] == "extra_forbidden":
            parts.append(f"{owner} has no parameter {name!r}")
        elif problem["type"] == "missing":
            parts.append(f"{owner} needs the '{name}' parameter (e.g. --param {name}=PATH)")
        else:
            parts.append(f"the '{name}' parameter of {owner} is invalid ({problem['msg']})")
    return "; ".join(parts) + "."


class SignArtifact(Remedy):
    """Sign the target's model file (AML.M0013) so tampering with it is detected.

    See the module docstring for what is refused and why. ``changes`` records
    ``manifest``, ``format``, ``key_id``, ``files``, ``bytes``, ``payload_sha256``
    (Bastion format), ``public_key`` (the ``.pub`` file beside the private key, if
    any), ``scanned`` and ``seconds``.

    Parameters
    ----------
    private_key : str
        PEM private key: Ed25519 (``bastion artifacts keygen``) for the Bastion
        format, ECDSA P-256/384/521 for ``openssf``.
    passphrase_env : str or None
        Name of the environment variable holding the key's passphrase.
    output_dir : str or None
        Folder for the signature (default: next to the model file, where
        ``supply_chain.artifact_integrity`` looks; elsewhere, give that probe its
        ``manifest`` parameter).
    format : {"bastion", "openssf"}, default "bastion"
    overwrite : bool, default False
        Replace an existing signature instead of refusing.
    scan : bool, default True
        Refuse to sign a file the artifact scanner does not prove safe.
    allow : list of str
        Reviewed ``module:qualname`` exceptions for the scan.
    workers : int or None
        Hashing threads (Bastion format).
    """

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id=_ID,
        title="Sign the model file so later changes are detected",
        catalog=CatalogRefs(
            owasp=["ML06"],
            failure_modes=["FM9"],
            atlas_techniques=["AML.T0010.003"],
            atlas_mitigations=["AML.M0013", "AML.M0014"],
        ),
        verified_by=(_PROBE,),
    )
    Params: ClassVar[type[SignArtifactParams]] = SignArtifactParams

    def validated(self) -> SignArtifactParams:
        """The parameters, validated; :class:`UsageError` with one sentence per problem."""
        return self.validated_params(SignArtifactParams, formatter=_format)

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        """Scan, then sign the target's model file; the target itself is unchanged."""
        p = self.validated()
        started = time.perf_counter()
        source = _source(target)
        output = _output(source, p)
        if output.exists() and not p.overwrite:
            raise UsageError(
                f"{source} already has a signature, {output}; signing again would bless "
                "whatever the file holds now, including any tampering. Verify it first "
                f"(`bastion artifacts verify {source} --key KEY.pub`), then set "
                "overwrite=true to replace it."
            )
        if p.scan:
            _require_clean(source, p.allow)
        key_path = Path(p.private_key).expanduser()
        passphrase = passphrase_from_env(p.passphrase_env)
        output.parent.mkdir(parents=True, exist_ok=True)
        changes: dict[str, Any] = {"source": str(source), "manifest": str(output)}
        if p.format == "bastion":
            key = load_private_key(key_path, passphrase=passphrase)
            with context.progress(total=None, description=f"signing {source.name}") as bar:
                signed = sign_path(
                    source,
                    key,
                    manifest_path=output,
                    workers=p.workers,
                    progress=bar.advance,
                    on_listing=lambda listing: bar.update(total=sum(f.size for f in listing.files)),
                )
            kid, files = signed.key_id, len(signed.manifest.files)
            size = signed.manifest.total_size
            changes["payload_sha256"] = signed.payload_sha256
        else:
            bundle = sign_openssf(source, key_path, signature_path=output, passphrase=passphrase)
            kid = bundle.key_id
            files, size = _listed(source, output)
        public = public_path_for(key_path)
        changes.update(
            format=p.format,
            key_id=kid,
            files=files,
            bytes=size,
            public_key=str(public) if _matches(public, kid) else None,
            scanned=p.scan,
            allow=list(p.allow),
            seconds=round(time.perf_counter() - started, 3),
        )
        where = "" if p.output_dir is None else f" and manifest={output}"
        notes = (
            f"Signed {source.name} ({files} file(s), {size} bytes) with key {kid[:16]}… into "
            f"{output}. Verify it with the producer's public key: --probe-param "
            f"{_PROBE}:public_key={changes['public_key'] or 'KEY.pub'}{where}."
        )
        log.info("%s: signed %s with key %s into %s", _ID, source, kid, output)
        return RemedyResult(target=target, changes=changes, notes=notes)


def _source(target: Target) -> Path:
    source = getattr(target, "source_path", None)
    if source is None:
        raise TargetError(
            f"{target.name!r} does not say which file it was loaded from (no source_path), "
            f"so {_ID} has nothing to sign; load it with load_target or set "
            "target.source_path."
        )
    path = Path(source)
    if not path.exists():
        raise TargetError(f"The model file of {target.name!r}, {path}, does not exist.")
    return path


def _output(source: Path, p: SignArtifactParams) -> Path:
    suffix = OPENSSF_SUFFIX if p.format == "openssf" else ".manifest.json"
    default = default_manifest_path(source, suffix)
    if p.output_dir is None:
        return default
    return Path(p.output_dir).expanduser() / default.name


def _require_clean(source: Path, allow: list[str]) -> None:
    unsafe = [f for f in scan_path(source, allow=allow).files if not f.safe]
    if unsafe:
        first = unsafe[0]
        worst = max(first.issues, key=lambda i: i.severity.rank)
        raise TargetError(
            f"{first.path} did not scan clean ({len(first.issues)} issue(s), worst: "
            f"{worst.message}), so {_ID} did not sign it: a signature would make it look "
            f"trustworthy. Get the model from a trusted source (`bastion artifacts scan "
            f"{source}`), or pass reviewed exceptions in 'allow'."
        )


def _listed(source: Path, signature: Path) -> tuple[int, int]:
    """Files and bytes an OpenSSF bundle covers (its own file excluded when inside)."""
    inside = relative_inside(source, signature)
    listing = list_tree(source, exclude=[inside] if inside else ())
    return len(listing.files), sum(f.size for f in listing.files)


def _matches(public: Path, kid: str) -> bool:
    """True when ``public`` exists and is the public half of the signing key."""
    if not public.is_file():
        return False
    try:
        return key_id(load_public_key(public)) == kid
    except UsageError:
        return False
