"""ONNX models as targets, run by ONNX Runtime.

:class:`OnnxTarget` reads a ``.onnx`` file once and builds an
:class:`onnxruntime.InferenceSession` from the bytes (so a model cannot pull in
external data files from paths it names), on ``CPUExecutionProvider`` unless told
otherwise.

Choosing the output. ``output="auto"`` picks, in order: the output named by
``output_name``; a score output whose name says ``prob``; any float output with one
column per class or a ``seq(map(...))`` output (a ZipMap, as skl2onnx writes by
default); and, when there is none, a label output (labels only). Whether scores are
probabilities or logits is read from the output name (``prob`` / ``logit``), and
otherwise decided by running two synthetic rows: rows that are non-negative and sum
to one are probabilities. That is a heuristic: declare ``output="probabilities"`` or
``output="logits"`` when you know. Logits get a softmax for :meth:`predict_proba`
and add the logits capability.

ZipMap outputs (a list of ``{class: probability}`` dicts) are converted to an array;
their keys are mapped to Bastion indices like labels (class name, else index), see
:class:`~bastion.targets._common.LabelMapper`.

Examples
--------
>>> import numpy as np, onnx
>>> from onnx import TensorProto, helper
>>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])
>>> y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])
>>> w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1.0, -1.0, -1.0, 1.0])
>>> graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["logits"])],
...                           "g", [x], [y], [w])
>>> model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
>>> import tempfile, os; path = os.path.join(tempfile.mkdtemp(), "m.onnx")
>>> onnx.save(model, path)
>>> from bastion.targets import InputSpec
>>> from bastion.targets.onnx_target import OnnxTarget
>>> t = OnnxTarget(path, input_spec=InputSpec(shape=(2,), lower=0.0, upper=1.0),
...                classes=["a", "b"])
>>> t.output_kind_, t.predict(np.array([[1.0, 0.0]], dtype=np.float32)).tolist()
('logits', [0])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from bastion.errors import TargetError, UsageError
from bastion.targets._common import (
    LabelMapper,
    looks_like_probabilities,
    read_model_bytes,
    softmax,
    synthetic_rows,
)
from bastion.targets.base import Capability, Target
from bastion.targets.spec import InputSpec

__all__ = ["OnnxTarget"]

log = logging.getLogger(__name__)

OutputKind = Literal["auto", "probabilities", "logits", "labels"]

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}
_SCORE_TYPES = {"tensor(float)", "tensor(double)", "tensor(float16)"}
_LABEL_TYPES = {"tensor(int64)", "tensor(int32)", "tensor(string)"}


class OnnxTarget(Target):
    """An ONNX classifier.

    Parameters
    ----------
    path : str or path-like
        The ``.onnx`` file.
    input_spec : InputSpec
    classes : sequence of str
    name : str or None
        Defaults to the file name.
    query_budget : int or None
    input_name : str or None
        Graph input to feed; needed only when the graph has several.
    output : {"auto", "probabilities", "logits", "labels"}
        What the chosen output holds (see the module docstring).
    output_name : str, int or None
        The output to read, by name or position; chosen automatically when None.
    providers : sequence of str
        ONNX Runtime execution providers, in order of preference.
    batch_size : int
        Rows per session run (1 when the graph fixes its batch dimension).

    Attributes
    ----------
    output_name_ : str
        The output actually read.
    output_kind_ : str
        ``"probabilities"``, ``"logits"`` or ``"labels"``.
    """

    kind = "onnx"
    provides: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS}
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        name: str | None = None,
        query_budget: int | None = None,
        input_name: str | None = None,
        output: OutputKind = "auto",
        output_name: str | int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        batch_size: int = 256,
    ) -> None:
        super().__init__(
            name=name or Path(path).name,
            input_spec=input_spec,
            classes=classes,
            query_budget=query_budget,
        )
        if output not in ("auto", "probabilities", "logits", "labels"):
            raise UsageError(
                "The 'output' option of the onnx adapter must be 'auto', 'probabilities', "
                f"'logits' or 'labels'; got {output!r}."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(
                f"The 'batch_size' option must be an integer >= 1; got {batch_size!r}."
            )
        self.source = os.fspath(path)
        self.output = output
        self.batch_size = batch_size
        self._mapper = LabelMapper(self.classes)
        self.session = self._open(read_model_bytes(path), providers)
        self._choose_input(input_name)
        self._choose_output(output, output_name)

    # -- set-up ---------------------------------------------------------------------
    def _open(self, data: bytes, providers: Sequence[str]) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(data, sess_options=options, providers=list(providers))
        except Exception as err:  # onnxruntime raises its own pybind exception types
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise TargetError(
                f"{self.source} could not be loaded as an ONNX model ({reason}); check that "
                "the file is a complete, valid .onnx export."
            ) from err

    def _choose_input(self, input_name: str | None) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        if input_name is None:
            if len(inputs) != 1:
                raise TargetError(
                    f"ONNX model {self.name!r} has inputs {sorted(inputs)}; name the one to feed "
                    "with the 'input_name' option."
                )
            input_name = next(iter(inputs))
        if input_name not in inputs:
            raise TargetError(
                f"ONNX model {self.name!r} has no input {input_name!r}; its inputs are "
                f"{sorted(inputs)}."
            )
        info = inputs[input_name]
        self.input_name_ = input_name
        if info.type not in _NUMPY_TYPES:
            raise TargetError(
                f"ONNX model {self.name!r} takes {info.type} on input {input_name!r}; Bastion "
                "feeds numeric tensors only."
            )
        self._input_dtype = _NUMPY_TYPES[info.type]
        dims = list(info.shape or [])
        expected = tuple(self.input_spec.shape)
        if dims and (
            len(dims) != len(expected) + 1
            or any(isinstance(d, int) and d != e for d, e in zip(dims[1:], expected, strict=True))
        ):
            raise TargetError(
                f"ONNX model {self.name!r} takes input of shape {dims}, but the input spec says "
                f"rows of shape {expected}; fix the input spec's shape."
            )
        self._fixed_batch = dims[0] if dims and isinstance(dims[0], int) else None

    def _choose_output(self, output: OutputKind, output_name: str | int | None) -> None:
        outputs = list(self.session.get_outputs())
        by_name = {o.name: o for o in outputs}
        if isinstance(output_name, int):
            if not 0 <= output_name < len(outputs):
                raise TargetError(
                    f"ONNX model {self.name!r} has {len(outputs)} outputs; output index "
                    f"{output_name} does not exist."
                )
            chosen = outputs[output_name]
        elif isinstance(output_name, str):
            if output_name not in by_name:
                raise TargetError(
                    f"ONNX model {self.name!r} has no output {output_name!r}; its outputs are "
                    f"{sorted(by_name)}."
                )
            chosen = by_name[output_name]
        else:
            chosen = self._auto_output(outputs, output)
        self.output_name_ = str(chosen.name)
        self._zipmap = str(chosen.type).startswith("seq(map(")
        is_labels = output == "labels" or (output == "auto" and chosen.type in _LABEL_TYPES)
        if not is_labels:
            if not (self._zipmap or chosen.type in _SCORE_TYPES):
                raise TargetError(
                    f"Output {self.output_name_!r} of ONNX model {self.name!r} is {chosen.type}, "
                    "not scores; choose a float output or output='labels'."
                )
            width = list(chosen.shape or [None])[-1]
            if not self._zipmap and isinstance(width, int) and width != self.n_classes:
                raise TargetError(
                    f"Output {self.output_name_!r} of ONNX model {self.name!r} has {width} "
                    f"columns but {self.n_classes} classes were declared; fix the classes or "
                    "the output."
                )
        if output != "auto":
            self.output_kind_ = output
        elif is_labels:
            self.output_kind_ = "labels"
        elif self._zipmap or "prob" in self.output_name_.lower():
            self.output_kind_ = "probabilities"
        elif "logit" in self.output_name_.lower():
            self.output_kind_ = "logits"
        else:
            self.output_kind_ = "probabilities"
            sample = self._scores(synthetic_rows(self.input_spec))
            if not looks_like_probabilities(sample):
                self.output_kind_ = "logits"
            log.info("ONNX output %r looks like %s", self.output_name_, self.output_kind_)

    def _auto_output(self, outputs: list[Any], output: OutputKind) -> Any:
        def is_scores(o: Any) -> bool:
            if str(o.type).startswith("seq(map("):
                return True
            return o.type in _SCORE_TYPES and len(list(o.shape or [])) == 2

        def fits(o: Any) -> bool:
            last = list(o.shape or [None])[-1]
            return (
                str(o.type).startswith("seq(map(")
                or not isinstance(last, int)
                or (last == self.n_classes)
            )

        candidates = [o for o in outputs if is_scores(o)]
        scores = [o for o in candidates if fits(o)] or candidates
        labels = [o for o in outputs if o.type in _LABEL_TYPES]
        hint = "logit" if output == "logits" else "prob"
        if output != "labels" and scores:
            named = [o for o in scores if hint in o.name.lower()]
            return (named or scores)[0]
        if output in ("auto", "labels") and labels:
            return labels[0]
        wanted = "scores or labels" if output == "auto" else output
        found = [(o.name, o.type) for o in outputs]
        raise TargetError(
            f"ONNX model {self.name!r} has no output that looks like {wanted} (outputs: "
            f"{found}); name one with the 'output_name' option."
        )

    # -- running --------------------------------------------------------------------
    def _run(self, x: np.ndarray) -> list[Any]:
        feed = np.ascontiguousarray(x, dtype=self._input_dtype)
        step = self._fixed_batch or self.batch_size
        results: list[Any] = []
        for start in range(0, len(feed), step):
            chunk = feed[start : start + step]
            try:
                (out,) = self.session.run([self.output_name_], {self.input_name_: chunk})
            except Exception as err:  # onnxruntime's pybind errors (InvalidArgument, Fail)
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise TargetError(
                    f"ONNX model {self.name!r} failed on a batch of shape {chunk.shape} ({first}); "
                    "check that the input spec's shape and dtype match the model."
                ) from err
            results.append(out)
        return results

    def _scores(self, x: np.ndarray) -> np.ndarray:
        parts = []
        for out in self._run(x):
            if self._zipmap:
                parts.append(self._from_zipmap(out))
            else:
                arr = np.asarray(out, dtype=np.float64)
                parts.append(arr.reshape(len(arr), -1) if arr.ndim != 2 else arr)
        scores = np.concatenate(parts, axis=0) if parts else np.zeros((0, self.n_classes))
        if scores.shape != (len(x), self.n_classes):
            raise TargetError(
                f"Output {self.output_name_!r} of ONNX model {self.name!r} has shape "
                f"{scores.shape}; expected ({len(x)}, {self.n_classes}) for the declared classes."
            )
        return scores

    def _from_zipmap(self, rows: Any) -> np.ndarray:
        out = np.zeros((len(rows), self.n_classes), dtype=np.float64)
        for i, row in enumerate(rows):
            for key, value in dict(row).items():
                out[i, self._mapper.index(key)] = float(value)
        return out

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = self._scores(x)
        return softmax(scores) if self.output_kind_ == "logits" else scores

    def _predict_labels(self, x: np.ndarray) -> np.ndarray:
        if self.output_kind_ != "labels":
            return np.asarray(self._scores(x).argmax(axis=1))
        values: list[Any] = []
        for out in self._run(x):
            values.extend(np.asarray(out).reshape(-1).tolist())
        return self._mapper.to_indices(values)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The model's logits ``(n, n_classes)``, when its output is logits; charges ``n``."""
        self.require(Capability.LOGITS, who="Asking for logits")
        arr = self._prepare(x)
        self.budget.charge(len(arr))
        return self._scores(arr)

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self.output_kind_ == "labels":
            return frozenset({Capability.LABELS})
        if self.output_kind_ == "logits":
            return self.provides
        return frozenset({Capability.LABELS, Capability.PROBABILITIES})

    # -- checks and description -----------------------------------------------------
    def verify(self) -> None:
        """Run two synthetic rows (not charged); :class:`TargetError` if the model rejects them."""
        rows = synthetic_rows(self.input_spec)
        if self.output_kind_ == "labels":
            self._predict_labels(rows)
        else:
            self._scores(rows)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            source=self.source,
            input_name=self.input_name_,
            output_name=self.output_name_,
            output_kind=self.output_kind_,
        )
        return info
