"""``bastion artifacts sign|verify|keygen|convert``: integrity and repair of model files.

* ``keygen OUT`` writes a private key to ``OUT`` (mode 0600; encrypted with the
  passphrase in the variable named by ``--passphrase-env``) and the public key to
  ``OUT.pub``. ``--algorithm ecdsa-p256`` makes a key for the OpenSSF format.
* ``sign PATH --key KEY`` hashes every file under ``PATH`` and writes a signed
  manifest (``PATH.manifest.json``; ``PATH.sig`` with ``--format openssf``).
* ``verify PATH --key KEY.pub`` checks the signature, then names every modified,
  added and missing file. The format is recognised from the signature file.
* ``convert PATH --to safetensors|skops`` rewrites a pickle-based model in a format
  that cannot run code, after a clean scan (:mod:`bastion.artifacts.convert`).

Exit codes: 0 verified (or done), 1 mismatch, bad signature or unsafe input, 2 usage
or I/O error. Keys and passphrases are never printed or logged; only key ids.

The other artifact commands own the ``artifacts`` group; :func:`register_into` adds
these four commands to it.

Examples
--------
>>> import typer
>>> from typer.testing import CliRunner
>>> from bastion.cli.artifacts_sign_cmd import register_into
>>> group = typer.Typer()
>>> register_into(group)
>>> sorted(c.name for c in group.registered_commands)
['convert', 'keygen', 'sign', 'verify']
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from bastion.artifacts.convert import ConvertTarget, convert_artifact
from bastion.artifacts.keys import (
    KeyAlgorithm,
    generate_keypair,
    load_private_key,
    load_public_key,
    passphrase_from_env,
)
from bastion.artifacts.openssf import (
    OPENSSF_SUFFIX,
    is_openssf_bundle,
    sign_openssf,
    verify_openssf,
)
from bastion.artifacts.signing import (
    VerifyResult,
    default_manifest_path,
    sign_path,
    verify_path,
)
from bastion.artifacts.tree_hash import DEFAULT_SHARD_SIZE, Listing
from bastion.canonical import parse_strict
from bastion.cli.console import err_console, out_console
from bastion.errors import UsageError

__all__ = ["parse_size", "register_into"]

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


class SignFormat(StrEnum):
    BASTION = "bastion"
    OPENSSF = "openssf"


class VerifyFormat(StrEnum):
    AUTO = "auto"
    BASTION = "bastion"
    OPENSSF = "openssf"


class ConvertChoice(StrEnum):
    SAFETENSORS = "safetensors"
    SKOPS = "skops"


class KeyAlgorithmChoice(StrEnum):
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"


def parse_size(text: str) -> int:
    """Parse ``"512MiB"``, ``"1GB"``, ``"4096"`` into bytes (KiB = 1024, KB = 1000).

    >>> parse_size("512MiB"), parse_size("1k"), parse_size("7")
    (536870912, 1000, 7)
    """
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"{text!r} is not a size; write e.g. 512MiB, 1GB or 4096.")
    number, unit = int(match.group(1)), (match.group(2) or "").lower()
    base = unit[:1] if unit != "b" else "b"
    factor = _UNITS[base]
    if "i" in unit:
        factor = 1024 ** "bkmgt".index(base)
    if number * factor < 1:
        raise UsageError(f"The size {text!r} must be at least one byte.")
    return number * factor


def register_into(artifacts_app: typer.Typer) -> None:
    """Add ``sign``, ``verify``, ``keygen`` and ``convert`` to the ``artifacts`` group."""
    artifacts_app.command("sign", help="Hash every file under PATH and write a signed manifest.")(
        sign_command
    )
    artifacts_app.command(
        "verify", help="Check PATH against its signed manifest; name every changed file."
    )(verify_command)
    artifacts_app.command(
        "keygen", help="Write a signing key pair: OUT (private, mode 0600) and OUT.pub."
    )(keygen_command)
    artifacts_app.command(
        "convert", help="Rewrite a scanned-clean pickle model as safetensors or skops."
    )(convert_command)


def _print_json(data: Any) -> None:
    out_console.print(json.dumps(data, indent=2), markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _byte_progress(
    description: str,
) -> Iterator[tuple[Callable[[Listing], None], Callable[[int], None]]]:
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def on_listing(listing: Listing) -> None:
            progress.update(task, total=sum(f.size for f in listing.files))

        def advance(amount: int) -> None:
            progress.advance(task, amount)

        yield on_listing, advance


def sign_command(
    path: Path = typer.Argument(..., help="A model file or folder."),
    key: Path = typer.Option(..., "--key", "-k", help="The private key (PEM)."),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="Where to write (default: PATH.manifest.json / PATH.sig)."
    ),
    signature_format: SignFormat = typer.Option(
        SignFormat.BASTION,
        "--format",
        case_sensitive=False,
        help="bastion (Ed25519 manifest) or openssf (model-signing bundle, ECDSA key).",
    ),
    passphrase_env: str | None = typer.Option(
        None, "--passphrase-env", help="Name of the environment variable holding the passphrase."
    ),
    shard_size: str = typer.Option(
        "512MiB", "--shard-size", help="Files larger than this are hashed in shards (bastion)."
    ),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", help="A relative path to leave out (repeatable); recorded."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Hashing threads (bastion format)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sign PATH."""
    passphrase = passphrase_from_env(passphrase_env)
    if signature_format is SignFormat.OPENSSF:
        result = sign_openssf(
            path, key, signature_path=manifest, passphrase=passphrase, exclude=exclude or ()
        )
        data = {
            "format": "openssf",
            "signature": str(result.signature_path),
            "key_id": result.key_id,
        }
        if as_json:
            _print_json(data)
        else:
            out_console.print(
                Text(
                    f"Signed {path} (OpenSSF model-signing bundle) with key "
                    f"{result.key_id[:16]}… into {result.signature_path}"
                )
            )
        return
    private_key = load_private_key(key, passphrase=passphrase)
    size = parse_size(shard_size) if shard_size else DEFAULT_SHARD_SIZE
    with _byte_progress(f"Hashing {path.name}") as (on_listing, advance):
        signed = sign_path(
            path,
            private_key,
            manifest_path=manifest,
            shard_size=size,
            workers=workers,
            exclude=exclude or (),
            progress=advance,
            on_listing=on_listing,
        )
    if as_json:
        _print_json(
            {
                "format": "bastion",
                "manifest": str(signed.manifest_path),
                "key_id": signed.key_id,
                "files": len(signed.manifest.files),
                "links": len(signed.manifest.links),
                "bytes": signed.manifest.total_size,
                "payload_sha256": signed.payload_sha256,
            }
        )
        return
    out_console.print(
        Text(
            f"Signed {len(signed.manifest.files)} files ({signed.manifest.total_size} bytes) "
            f"under {path} with key {signed.key_id[:16]}… into {signed.manifest_path}"
        )
    )
    out_console.print(Text(f"Manifest digest (pin this): sha256:{signed.payload_sha256}"))


def _detect_format(path: Path, manifest: Path | None) -> tuple[VerifyFormat, Path]:
    """Pick the signature file and its format when ``--format auto``."""
    if manifest is None:
        candidates = [default_manifest_path(path), default_manifest_path(path, OPENSSF_SUFFIX)]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            raise UsageError(
                f"No signature found for {path} (looked for {candidates[0].name} and "
                f"{candidates[1].name}); give it with --manifest."
            )
        manifest = existing[0]
    try:
        if manifest.stat().st_size > 256 * 1024 * 1024:
            return VerifyFormat.BASTION, manifest  # the Bastion reader refuses it with a reason
        head = manifest.read_bytes()
    except OSError as err:
        raise UsageError(f"Cannot read {manifest}: {err.strerror}.") from None
    try:
        document = parse_strict(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return VerifyFormat.BASTION, manifest  # the Bastion reader reports it as malformed
    if is_openssf_bundle(document):
        return VerifyFormat.OPENSSF, manifest
    return VerifyFormat.BASTION, manifest


def verify_command(
    path: Path = typer.Argument(..., help="The model file or folder to check."),
    key: Path = typer.Option(..., "--key", "-k", help="The signer's public key (PEM)."),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="The signature file (default: next to PATH)."
    ),
    signature_format: VerifyFormat = typer.Option(
        VerifyFormat.AUTO, "--format", case_sensitive=False, help="auto, bastion or openssf."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Hashing threads."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Verify PATH."""
    if signature_format is VerifyFormat.AUTO:
        signature_format, manifest = _detect_format(path, manifest)
    public_key_path = key
    if signature_format is VerifyFormat.OPENSSF:
        result = verify_openssf(path, public_key_path, signature_path=manifest)
    else:
        public_key = load_public_key(public_key_path)
        with _byte_progress(f"Hashing {path.name}") as (on_listing, advance):
            result = verify_path(
                path,
                public_key,
                manifest_path=manifest,
                workers=workers,
                progress=advance,
                on_listing=on_listing,
            )
    if as_json:
        _print_json(result.to_dict())
    else:
        _print_result(path, result)
    if not result.ok:
        raise typer.Exit(code=1)


def _print_result(path: Path, result: VerifyResult) -> None:
    diff = result.diff
    if diff is not None and not diff.ok:
        table = Table(title=f"Changes under {path}", title_justify="left")
        table.add_column("Change", no_wrap=True)
        table.add_column("Path", overflow="fold")
        for label, style, paths in (
            ("modified", "bold red", diff.modified),
            ("added", "yellow", diff.added),
            ("missing", "red", diff.missing),
        ):
            for item in paths:
                table.add_row(Text(label, style=style), Text(item))
        out_console.print(table)
    verdict, verdict_style = {
        "ok": ("VERIFIED", "bold green"),
        "mismatch": ("MISMATCH", "bold red"),
        "bad_signature": ("BAD SIGNATURE", "bold red"),
    }[result.status.value]
    out_console.print(
        Text(f"{verdict}: ", style=verdict_style)
        + Text(
            f"{path} ({result.signature_format} signature {result.manifest_path.name}): "
            f"{result.reason}"
        )
    )


def keygen_command(
    out: Path = typer.Argument(..., help="Private key file to write; the public key gets .pub."),
    algorithm: KeyAlgorithmChoice = typer.Option(
        KeyAlgorithmChoice.ED25519,
        "--algorithm",
        case_sensitive=False,
        help="ed25519 (Bastion manifests) or ecdsa-p256 (OpenSSF format).",
    ),
    passphrase_env: str | None = typer.Option(
        None,
        "--passphrase-env",
        help="Encrypt the private key with the passphrase in this environment variable.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
) -> None:
    """Generate a key pair."""
    chosen: KeyAlgorithm = "ed25519" if algorithm is KeyAlgorithmChoice.ED25519 else "ecdsa-p256"
    pair = generate_keypair(
        out, algorithm=chosen, passphrase=passphrase_from_env(passphrase_env), overwrite=force
    )
    encrypted = "encrypted" if passphrase_env else "unencrypted"
    out_console.print(
        Text(
            f"Wrote {pair.algorithm} private key {pair.private_path} ({encrypted}, mode 0600) and "
            f"public key {pair.public_path}; key id {pair.key_id}."
        )
    )
    if not passphrase_env:
        err_console.print(
            Text(
                "The private key is not encrypted; keep it out of version control, or use "
                "--passphrase-env.",
                style="yellow",
            )
        )


def convert_command(
    path: Path = typer.Argument(..., help="A pickle-based model: torch.save, pickle or joblib."),
    to: ConvertChoice | None = typer.Option(
        None,
        "--to",
        case_sensitive=False,
        help="safetensors (tensors) or skops (scikit-learn); default: by content.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write (default: next to PATH, new suffix)."
    ),
    select: str | None = typer.Option(
        None, "--select", help="Convert only this entry of a checkpoint, e.g. model_state_dict."
    ),
    allow: list[str] | None = typer.Option(
        None, "--allow", help="A reviewed global module:qualname to accept (repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Convert PATH after a clean scan."""
    chosen: ConvertTarget | None = None
    if to is not None:
        chosen = "safetensors" if to is ConvertChoice.SAFETENSORS else "skops"
    result = convert_artifact(
        path, to=chosen, output=output, overwrite=force, select=select, allow=allow or ()
    )
    if as_json:
        _print_json(result.to_dict())
        return
    out_console.print(Text(f"Scanned clean and converted {path} to {result.output}"))
    if result.tensors:
        out_console.print(Text(f"{result.tensors} tensors written, each read back equal."))
    if result.dropped:
        out_console.print(
            Text(
                f"Dropped {len(result.dropped)} non-tensor entries: "
                + ", ".join(result.dropped[:20])
                + (" …" if len(result.dropped) > 20 else ""),
                style="yellow",
            )
        )
    for note in result.notes:
        out_console.print(Text(f"Note: {note}."))
    if result.trusted_types:
        out_console.print(
            Text("Loading it with skops needs trusted=[" + ", ".join(result.trusted_types) + "].")
        )
    out_console.print(Text(f"sha256:{result.sha256}  {result.output}"))
