"""Leave pickle behind: re-serialise a scanned-clean model as safetensors or skops.

A pickle is a program for a stack machine, and loading one runs it: Trail of Bits
showed how a model file can carry any code that way and still behave as a model
(Sultanik, "Never a dill moment: Exploiting machine learning pickle files", Trail of
Bits, 2021), and Zhao et al. found such files on public model hubs ("Models Are Codes:
Towards Measuring Malicious Code Poisoning Attacks on Pre-trained Model Hubs", ASE
2024). The fix is a format that is data only: safetensors (a JSON header and raw
tensor bytes; its parser was audited by Trail of Bits for Hugging Face, EleutherAI and
Stability AI in 2023) for weights, and skops (a JSON schema of allowed types, loaded
without ``pickle``) for scikit-learn estimators. Mitigates OWASP ML06 and MITRE ATLAS
AML.T0011.000 through AML.M0011 (restrict library loading: the new file names no code
to import) and AML.M0014 (the loaded bytes are pinned to the SHA-256 the scan saw, and
both digests are recorded).

The remedy never runs an unsafe file:

1. the target's model file (``target.source_path``) is scanned; any issue refuses
   (:class:`~bastion.artifacts.convert.ConversionRefused`), and a file that is not
   pickle-based has nothing to re-serialise (:class:`~bastion.errors.UsageError`);
2. the file is loaded with :func:`bastion.artifacts.safe_load`, pinned to the scanned
   SHA-256, so only what the scanner's allowlist accepts is ever imported;
3. a :class:`~bastion.targets.sklearn_target.SklearnTarget` is written as skops and
   opened again with :func:`~bastion.targets.loading.load_target`, trusting exactly
   the types skops asks about (listed in ``changes``); a
   :class:`~bastion.targets.torch_target.TorchTarget` gets the state dict that fits
   its module (``select`` names it inside a checkpoint) written as safetensors, and a
   copy of its module loads those weights with ``strict=True`` (safetensors holds no
   architecture, so the module comes from the target, never from the file). A JSON
   note beside the new file records where it came from, both digests, what was
   dropped and how to load it;
4. the new target must give the *same* outputs as the original on the dataset's test
   rows (training rows when there are none): the largest absolute difference of
   their scores is recorded, and anything above ``atol`` (default 0) refuses.

Verified by ``supply_chain.artifact_scan``: before, the pickle-based file is a low
finding; after, the new file is not vulnerable. Files go to ``output_dir``, else to
``hardened/`` in the run's output folder (``bastion harden`` passes its report folder).

Examples
--------
>>> import pickle, tempfile, pathlib, numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from bastion.data.dataset import Dataset
>>> from bastion.probes.context import ProbeContext
>>> from bastion.targets import InputSpec
>>> from bastion.targets.sklearn_target import SklearnTarget
>>> x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
>>> y = (x[:, 0] > 0.5).astype(np.int64)
>>> data = Dataset("toy", x[:30], y[:30], x[30:], y[30:], classes=["lo", "hi"])
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> est = LogisticRegression().fit(x, y)
>>> _ = (folder / "model.pkl").write_bytes(pickle.dumps(est))
>>> t = SklearnTarget(est, input_spec=InputSpec(shape=(3,), lower=0.0, upper=1.0),
...                   classes=["lo", "hi"], name="toy")
>>> t.source_path = folder / "model.pkl"
>>> r = SafeReserialisation().apply(t, data, ProbeContext(output_dir=folder))
>>> r.target.source_path.name, r.changes["format"], r.changes["max_abs_difference"]
('model.skops', 'skops', 0.0)
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bastion.artifacts.convert import (
    ConversionRefused,
    ConversionResult,
    ConvertTarget,
    collect_tensors,
    default_output,
    select_entry,
    write_converted,
)
from bastion.data.dataset import Dataset
from bastion.errors import DataError, TargetError, UsageError
from bastion.findings import CatalogRefs
from bastion.probes.context import ProbeContext
from bastion.remedies.base import Remedy, RemedyMeta, RemedyResult
from bastion.targets.base import Capability, Target

__all__ = ["SafeReserialisation", "SafeReserialisationParams"]

log = logging.getLogger(__name__)
_ID = "supply_chain.safe_reserialisation"


class SafeReserialisationParams(BaseModel):
    """Parameters of :class:`SafeReserialisation`."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str | None = None
    select: str | None = None
    allow: list[str] = Field(default_factory=list)
    atol: float = Field(0.0, ge=0, allow_inf_nan=False)
    max_rows: int = Field(10_000, ge=1)
    overwrite: bool = True


class SafeReserialisation(Remedy):
    """Rewrite the target's pickle-based model file as safetensors (torch) or skops.

    See the module docstring for the steps and their sources. ``changes`` records the
    source and output files with their SHA-256, the formats, dropped checkpoint
    entries, trusted skops types, and the largest absolute score difference between
    the original and the re-loaded model on the rows compared.

    Parameters
    ----------
    output_dir : str or None
        Folder for the new file and its JSON note (default: ``hardened/`` in the
        context's output folder).
    select : str or None
        Dotted key of the state dict inside a torch checkpoint; by default the one
        whose tensors match the module's ``state_dict`` keys (the whole object or a
        top-level entry).
    allow : list of str
        Reviewed ``module:qualname`` exceptions for the scan and the load.
    atol : float, default 0.0
        Largest absolute score difference accepted between original and re-loaded model.
    max_rows : int, default 10000
        Rows compared.
    overwrite : bool, default True
        Replace an earlier output in the folder; False refuses.
    """

    meta: ClassVar[RemedyMeta] = RemedyMeta(
        id=_ID,
        title="Re-serialise a pickle-based model as safetensors or skops",
        catalog=CatalogRefs(
            owasp=["ML06"],
            failure_modes=["FM9", "FM11"],
            atlas_techniques=["AML.T0011.000"],
            atlas_mitigations=["AML.M0011", "AML.M0014"],
        ),
        verified_by=("supply_chain.artifact_scan",),
    )
    Params: ClassVar[type[SafeReserialisationParams]] = SafeReserialisationParams

    def validated(self) -> SafeReserialisationParams:
        """The parameters, validated; :class:`UsageError` with one sentence per problem."""
        return self.validated_params(SafeReserialisationParams)

    def apply(self, target: Target, data: Dataset, context: ProbeContext) -> RemedyResult:
        """Scan, safely load, re-write and re-load the target's model file."""
        from bastion.artifacts import safe_load, scan_path
        from bastion.targets.sklearn_target import SklearnTarget
        from bastion.targets.torch_target import TorchTarget

        p = self.validated()
        started = time.perf_counter()
        source = _source(target)
        folder = _folder(p, context)
        report = scan_path(source, allow=p.allow).files[0]
        if not report.safe:
            worst = max(report.issues, key=lambda i: i.severity.rank)
            raise ConversionRefused(
                f"{source} did not scan clean ({len(report.issues)} issue(s), worst: "
                f"{worst.message}), so {_ID} did not load it; remove what the scan found "
                f"or get the model from a trusted source (`bastion artifacts scan {source}`)."
            )
        formats = " > ".join(report.formats) or "unrecognised data"
        if not report.pickle_based:
            raise UsageError(
                f"{source} ({formats}) is not pickle-based, so {_ID} has nothing to re-serialise."
            )
        if not isinstance(target, SklearnTarget | TorchTarget):
            raise TargetError(
                f"{_ID} re-serialises scikit-learn (skops) and torch (safetensors) targets; "
                f"{target.name!r} is a {target.kind} target."
            )
        obj = safe_load(source, expected_sha256=report.sha256, allow=p.allow)
        rows = _rows(data, p.max_rows)
        to: ConvertTarget = "skops" if isinstance(target, SklearnTarget) else "safetensors"
        output = default_output(folder / source.name, to)
        if output.resolve() == source.resolve():
            raise UsageError(f"The output {output} would replace the model file; set output_dir.")
        if output.exists() and not p.overwrite:
            raise UsageError(f"{output} already exists; set overwrite=true or another output_dir.")
        folder.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        if isinstance(target, SklearnTarget):
            result, hardened, chosen = _sklearn(target, obj, source, report.sha256, output)
        else:
            result, hardened, chosen = _torch(target, obj, p.select, source, report.sha256, output)
        diff, labels_equal, compared = _compare(target, hardened, rows)
        if diff > p.atol or not labels_equal:
            output.unlink(missing_ok=True)
            raise TargetError(
                f"The re-loaded model does not give the original's outputs (largest "
                f"absolute {compared} difference {diff:.3g} on {len(rows)} rows, labels "
                f"{'equal' if labels_equal else 'differ'}); does {source} hold the model "
                f"that {target.name!r} runs? Nothing was kept."
            )
        note = _write_note(target, result, chosen, folder)
        changes: dict[str, Any] = {
            "source": str(source),
            "source_sha256": report.sha256,
            "source_formats": list(report.formats),
            "format": to,
            "output": str(result.output),
            "output_sha256": result.sha256,
            "note": str(note),
            "select": chosen,
            "tensors": result.tensors,
            "dropped": list(result.dropped),
            "trusted_types": list(result.trusted_types),
            "allow": list(p.allow),
            "rows_compared": len(rows),
            "compared": compared,
            "max_abs_difference": diff,
            "labels_identical": labels_equal,
            "seconds": round(time.perf_counter() - started, 3),
        }
        notes = (
            f"Re-serialised {source.name} ({formats}) as {result.output.name} ({to}); the "
            f"re-loaded model's {compared} differ by at most {diff:.3g} on {len(rows)} rows."
        )
        log.info("%s: %s", _ID, notes)
        return RemedyResult(target=hardened, changes=changes, notes=notes)


def _source(target: Target) -> Path:
    source = getattr(target, "source_path", None)
    if source is None:
        raise TargetError(
            f"{target.name!r} does not say which file it was loaded from (no source_path), "
            f"so {_ID} has nothing to re-serialise; load it with load_target or set "
            "target.source_path."
        )
    path = Path(source)
    if not path.is_file():
        raise TargetError(f"The model file of {target.name!r}, {path}, is not a file.")
    return path


def _folder(p: SafeReserialisationParams, context: ProbeContext) -> Path:
    if p.output_dir is not None:
        return Path(p.output_dir)
    if context.output_dir is not None:
        return Path(context.output_dir) / "hardened"
    raise UsageError(f"{_ID} needs a folder for the new model file; pass output_dir.")


def _rows(data: Dataset, limit: int) -> np.ndarray:
    x = data.x_test if len(data.x_test) else data.x_train
    if len(x) == 0:
        raise DataError(
            f"Dataset {data.name!r} has no rows to compare the re-loaded model with the "
            "original on."
        )
    return np.asarray(x[:limit])


def _sklearn(
    target: Any, obj: Any, source: Path, sha256: str, output: Path
) -> tuple[ConversionResult, Target, str | None]:
    from bastion.targets.loading import load_target

    if not hasattr(obj, "predict"):
        raise TargetError(
            f"{source} holds a {type(obj).__name__}, not a scikit-learn model; it cannot "
            f"stand in for {target.name!r}."
        )
    result = write_converted(obj, source, sha256, to="skops", output=output, overwrite=True)
    hardened = load_target(
        result.output,
        kind="sklearn",
        input_spec=target.input_spec,
        classes=target.classes,
        name=target.name,
        query_budget=target.budget.limit,
        options={"trusted": list(result.trusted_types)},
    )
    return result, hardened, None


def _state_dict(obj: Any, expected: set[str], select: str | None) -> tuple[Any, str | None]:
    """The entry of ``obj`` whose tensors are exactly the module's state dict."""
    if select is not None:
        return select_entry(obj, select), select
    candidates: list[tuple[str | None, Any]] = [(None, obj)]
    if isinstance(obj, Mapping):
        candidates += [(str(k), v) for k, v in obj.items() if isinstance(v, Mapping)]
    for key, value in candidates:
        if set(collect_tensors(value)[0]) == expected:
            return value, key
    found = sorted(collect_tensors(obj)[0])
    missing = sorted(expected - set(found))[:5]
    raise TargetError(
        f"No entry of the checkpoint holds exactly the module's {len(expected)} state-dict "
        f"tensors (e.g. missing {missing}); name it with select=..."
    )


def _torch(
    target: Any, obj: Any, select: str | None, source: Path, sha256: str, output: Path
) -> tuple[ConversionResult, Target, str | None]:
    from safetensors.torch import load_file

    from bastion.targets.torch_target import TorchTarget

    expected = set(target.module.state_dict())
    weights, chosen = _state_dict(obj, expected, select)
    result = write_converted(
        weights, source, sha256, to="safetensors", output=output, overwrite=True
    )
    try:
        module = copy.deepcopy(target.module)
        module.load_state_dict(load_file(str(result.output), device=str(target.device)))
    except Exception as err:  # deepcopy or strict loading of an odd module
        output.unlink(missing_ok=True)
        raise TargetError(
            f"The safetensors weights could not be loaded into a copy of {target.name!r}'s "
            f"module ({err}); nothing was kept."
        ) from err
    module.eval()
    hardened = TorchTarget(
        module,
        input_spec=target.input_spec,
        classes=target.classes,
        name=target.name,
        query_budget=target.budget.limit,
        device=target.device,
        batch_size=target.batch_size,
        embedding_layer=target.embedding_layer,
        module_factory=target.module_factory,
        trainer=target.trainer,
        train_options=target.train_options,
    )
    hardened.source, hardened.format = str(result.output), "safetensors"
    hardened.source_path = result.output
    return result, hardened, chosen


def _scores(target: Target, x: np.ndarray) -> tuple[np.ndarray, str]:
    """Uncharged outputs for the comparison (a local check, not a query)."""
    arr = target._prepare(x)
    if Capability.PROBABILITIES in target.capabilities or Capability.LOGITS in target.capabilities:
        what = "scores"
        out = np.asarray(target._predict_proba(arr), dtype=np.float64)
    else:
        what = "labels"
        out = np.asarray(target._predict_labels(arr), dtype=np.float64)
    return out, what


def _compare(original: Target, hardened: Target, x: np.ndarray) -> tuple[float, bool, str]:
    before, what = _scores(original, x)
    after, _ = _scores(hardened, x)
    if before.shape != after.shape:
        return float("inf"), False, what
    diff = float(np.max(np.abs(before - after))) if before.size else 0.0
    if what == "labels":
        return diff, bool(np.array_equal(before, after)), what
    return diff, bool(np.array_equal(before.argmax(axis=1), after.argmax(axis=1))), what


def _write_note(target: Any, result: ConversionResult, chosen: str | None, folder: Path) -> Path:
    model = target.module if result.to == "safetensors" else target.estimator
    kind = type(model)
    note: dict[str, Any] = {
        "written_by": f"bastion {_ID}",
        **result.to_dict(),
        "select": chosen,
        "model_class": f"{kind.__module__}:{kind.__qualname__}",
        "target": target.name,
        "classes": list(target.classes),
        "input_spec": target.input_spec.model_dump(mode="json"),
    }
    if result.to == "safetensors":
        note["load"] = (
            "Build the module in Python (the file holds weights only), then "
            "module.load_state_dict(safetensors.torch.load_file(path))."
        )
    else:
        note["load"] = (
            "skops.io.load(path, trusted=trusted_types), or bastion's load_target(path, "
            "kind='sklearn', options={'trusted': trusted_types})."
        )
    path = folder / f"{result.output.name}.json"
    path.write_text(json.dumps(note, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
