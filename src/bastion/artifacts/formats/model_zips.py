"""What model archives mean: ``torch.save`` zips, TorchScript, Keras, legacy torch tars.

:func:`plan` looks at a zip's member names and returns a :class:`ZipPlan` that scans
the members a model loader gives meaning to:

* **torch.save** (``<prefix>/data.pkl``): the pickle is scanned first; each persistent
  id must be ``('storage', <allowed storage type>, key, location, numel)`` and its
  ``<prefix>/data/<key>`` record must exist with the declared size. Those records are
  tensor bytes: CRC-checked and hashed, never parsed.
* **TorchScript** (``constants.pkl`` and ``code/``): torch.jit's own C++ unpickler reads
  the pickles, so ``__torch__.*`` classes (compiled from the archive's code) and
  ``torch.jit._pickle`` helpers are allowed there; the code files are parsed and checked
  (:mod:`.torchscript_code`).
* **Keras v3** (``config.json`` + ``metadata.json``): the config is checked
  (:mod:`.keras_config`).

Examples
--------
>>> from bastion.artifacts.context import ScanContext
>>> p = plan(ScanContext(file="m.pt"), ["m/data.pkl", "m/data/0", "m/version"], ())
>>> p.kind, sorted(["m/version", "m/data/0", "m/data.pkl"], key=p.order)
('torch', ['m/data.pkl', 'm/data/0', 'm/version'])
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bastion.artifacts.allow_data import STORAGE_ELEMENT_SIZE
from bastion.artifacts.allowlist import Allowlist
from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.issues import Category
from bastion.artifacts.pickle_values import Global, PersistentRef
from bastion.artifacts.pickle_vm import PickleRun

__all__ = ["ZipPlan", "plan", "scan_legacy_tar_member"]


@dataclass
class ZipPlan:
    """How to read one zip: its kind, the member prefix and the storages seen."""

    kind: str = "zip"
    prefix: str = ""
    allowlist: Allowlist | None = None
    storages: dict[str, int] = field(default_factory=dict)  # key -> expected bytes
    found: set[str] = field(default_factory=set)

    def order(self, name: str) -> tuple[int, str]:
        """Pickles first, so persistent ids are known before the records they name."""
        return (0 if name.endswith((".pkl", "data.pkl")) else 1, name)

    def handle(
        self, ctx: ScanContext, name: str, data: Window, member: tuple[str, ...], depth: int
    ) -> bool:
        """Scan a member with its model-format meaning; False leaves it to the generic path."""
        from bastion.artifacts.formats import keras_config, pickles, torchscript_code

        rel = name[len(self.prefix) :] if name.startswith(self.prefix) else name
        if self.kind in ("torch", "torchscript") and rel.endswith((".pkl", ".debug_pkl")):
            ctx.format("pickle")
            runs = pickles.scan_pickle(
                ctx,
                data,
                member,
                depth=depth + 1,
                allowlist=self.allowlist,
                python=self.kind != "torchscript",
            )
            if rel in ("data.pkl", "constants.pkl"):
                self._storages(ctx, runs, member)
            return True
        if self.kind in ("torch", "torchscript") and rel.startswith("data/"):
            key = rel[len("data/") :]
            if key in self.storages:
                self.found.add(key)
                if self.storages[key] >= 0 and data.size < self.storages[key]:
                    ctx.issue(
                        Category.CONTAINER_ANOMALY,
                        f"tensor record {key!r} holds "
                        f"{data.size} bytes but the pickle declares {self.storages[key]}",
                        member,
                    )
                return True
        if self.kind == "torchscript" and rel.startswith("code/") and rel.endswith(".py"):
            torchscript_code.scan_code(ctx, data, member)
            return True
        if self.kind == "keras" and name == "config.json":
            keras_config.scan_config_bytes(ctx, data.head(data.size), member, "config.json")
            return True
        return False

    def _storages(self, ctx: ScanContext, runs: list[PickleRun], member: tuple[str, ...]) -> None:
        for run in runs:
            for ref in run.persistent:
                self._storage(ctx, ref, member)

    def _storage(self, ctx: ScanContext, ref: PersistentRef, member: tuple[str, ...]) -> None:
        pid = ref.pid
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            ctx.issue(
                Category.UNPROVABLE,
                "a persistent id is not a torch storage reference "
                "('storage', type, key, location, numel); could not be proven safe",
                member,
                offset=ref.offset,
                opcode="BINPERSID",
            )
            return
        kind, key, _, numel = pid[1:]
        if not isinstance(kind, Global) or not kind.allowed or not isinstance(key, str):
            ctx.issue(
                Category.UNPROVABLE,
                "a torch storage reference has no allowed storage type or key",
                member,
                offset=ref.offset,
            )
            return
        size = STORAGE_ELEMENT_SIZE.get(kind.name)
        ok = isinstance(numel, int) and not isinstance(numel, bool) and numel >= 0
        self.storages[key] = numel * size if ok and size is not None else -1  # type: ignore[operator]

    def finish(self, ctx: ScanContext, member: tuple[str, ...]) -> None:
        """Report storages the pickle names but the archive lacks."""
        missing = sorted(set(self.storages) - self.found)
        if missing:
            ctx.issue(
                Category.CONTAINER_ANOMALY,
                f"the pickle names tensor record(s) "
                f"{', '.join(missing[:5])} that the archive lacks",
                member,
            )
        if self.found:
            ctx.note(f"{len(self.found)} tensor record(s) were CRC-checked and hashed, not parsed")


def plan(ctx: ScanContext, names: list[str], member: tuple[str, ...]) -> ZipPlan:
    """Decide what kind of model archive ``names`` describe."""
    if "config.json" in names and "metadata.json" in names:
        ctx.format("keras")
        return ZipPlan(kind="keras")
    prefixes = sorted(
        {n[: -len("data.pkl")] for n in names if n.endswith("data.pkl") and n.count("/") <= 1}
    )
    prefix = prefixes[0] if prefixes else ""
    if any(n == f"{prefix}constants.pkl" for n in names) and any(
        n.startswith(f"{prefix}code/") for n in names
    ):
        ctx.format("torchscript")
        return ZipPlan(kind="torchscript", prefix=prefix, allowlist=ctx.allowlist.for_torchscript())
    if prefixes:
        ctx.format("torch")
        return ZipPlan(kind="torch", prefix=prefix, allowlist=ctx.allowlist)
    if names and all(n.endswith(".npy") for n in names):
        ctx.format("npz")
    return ZipPlan()


def scan_legacy_tar_member(
    ctx: ScanContext, w: Window, member: tuple[str, ...], name: str, depth: int
) -> None:
    """``storages`` / ``tensors`` of a legacy torch tar: pickles with raw data between."""
    from bastion.artifacts.formats.pickles import scan_one

    ctx.report.pickle_based = True  # torch.load reads these records with pickle
    first = scan_one(ctx, w, 0, member, depth + 1)
    if not first.stopped or not isinstance(first.value, int) or first.value < 0:
        return
    pos = first.end
    for _ in range(min(first.value, ctx.limits.max_members)):
        run = scan_one(ctx, w, pos, member, depth + 1)
        if not run.stopped:
            return
        pos += run.end
        if name == "storages":
            value = run.value
            kind = value[2] if isinstance(value, tuple) and len(value) == 3 else None
            size = STORAGE_ELEMENT_SIZE.get(kind.name, 1) if isinstance(kind, Global) else 1
            head = w.head(8, pos)
            numel = struct.unpack("<q", head)[0] if len(head) == 8 else -1
            pos += 8 + numel * size
        else:
            head = w.head(4, pos)
            ndim = struct.unpack("<i", head)[0] if len(head) == 4 else -1
            pos += 8 + 16 * ndim + 8
        if pos > w.size or pos < 0:
            ctx.issue(
                Category.UNPROVABLE,
                f"the legacy torch {name} record is truncated",
                member,
                offset=pos,
            )
            return
    if name == "storages":
        run = scan_one(ctx, w, pos, member, depth + 1)
        pos += run.end
    if pos < w.size:
        ctx.issue(
            Category.CONTAINER_ANOMALY,
            f"{w.size - pos} byte(s) follow the legacy torch {name} records",
            member,
            offset=pos,
        )
