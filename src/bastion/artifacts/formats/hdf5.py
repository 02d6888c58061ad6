"""HDF5 files (Keras 2 / ``tf.keras`` ``.h5`` models), read with ``h5py`` when installed.

The ``model_config`` and ``training_config`` attributes are Keras configs and are checked
like a ``.keras`` config (:mod:`.keras_config`: Lambda layers, modules outside Keras).
Links to other files (``ExternalLink``) and datasets stored in external files make the
model read paths outside itself and are reported. Without ``h5py`` the file cannot be
proven safe, which is reported rather than passed.

Examples
--------
>>> from bastion.artifacts.formats.hdf5 import scan_hdf5
>>> callable(scan_hdf5)
True
"""

from __future__ import annotations

from typing import Any

from bastion.artifacts.context import ScanContext, Window
from bastion.artifacts.formats.keras_config import scan_config_bytes
from bastion.artifacts.issues import Category

__all__ = ["scan_hdf5"]


def _text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if hasattr(value, "tobytes") and getattr(value, "dtype", None) is not None:
        value = value.item() if value.shape == () else value
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def scan_hdf5(ctx: ScanContext, w: Window, member: tuple[str, ...]) -> None:
    """Check the Keras configs and external references of an HDF5 file."""
    try:
        import h5py
    except ImportError:
        ctx.issue(
            Category.UNPROVABLE,
            "HDF5 file: install h5py so its model config can be checked; could not be proven safe",
            member,
        )
        return
    source: Any = ctx.path if not member and ctx.path is not None else w.file()
    try:
        with h5py.File(source, "r") as f:
            for attr in ("model_config", "training_config"):
                if attr in f.attrs:
                    scan_config_bytes(ctx, _text(f.attrs[attr]), member, attr)
            count = 0
            todo: list[tuple[str, Any]] = [("", f)]
            while todo:
                prefix, group = todo.pop()
                for name in group:
                    count += 1
                    if count > ctx.limits.max_members:
                        ctx.issue(Category.UNPROVABLE, "more HDF5 objects than max_members", member)
                        return
                    link = group.get(name, getlink=True)
                    path = f"{prefix}/{name}"
                    if isinstance(link, h5py.ExternalLink):
                        ctx.issue(
                            Category.FILE_OR_NETWORK,
                            f"HDF5 object {path} links to the external file {link.filename!r}",
                            member,
                            global_name=str(link.filename),
                        )
                        continue
                    if isinstance(link, h5py.SoftLink):
                        continue
                    obj = group[name]
                    if isinstance(obj, h5py.Group):
                        todo.append((path, obj))
                    elif isinstance(obj, h5py.Dataset) and obj.external:
                        ctx.issue(
                            Category.FILE_OR_NETWORK,
                            f"HDF5 dataset {path} stores its data in external file(s)",
                            member,
                            global_name=str(obj.external[0][0]),
                        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        ctx.issue(
            Category.UNPROVABLE,
            f"the HDF5 file cannot be read ({err}); could not be proven safe",
            member,
        )
        return
    ctx.note("HDF5 datasets were hashed, not parsed")
