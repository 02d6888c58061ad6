"""scikit-learn estimators and pipelines as targets.

What the target can do follows from what the estimator has:

==========================  =============================================
estimator has               capabilities
==========================  =============================================
``predict_proba``           labels, probabilities, training
``decision_function`` only  labels, logits (the decision scores), training
``predict`` only            labels, training
==========================  =============================================

Decision scores are exposed as logits, not probabilities: for a binary model the
margin ``m`` becomes the pair ``(-m/2, m/2)``, whose softmax is the logistic
``sigmoid(m)``; for an SVM that is an uncalibrated score, which is why such a model
does not claim the probabilities capability.

**Class mapping.** Bastion's labels are indices ``0..K-1`` into ``classes``. The
estimator's ``classes_`` are matched to them value by value: a value equal to a class
*name* maps to that name's index (a model fitted on ``"malignant"``/``"benign"``
strings), otherwise an integer value is the index itself (a model fitted on Bastion
datasets, whose labels are already ``0..K-1``). Columns are reordered accordingly,
and a class the model never saw gets probability 0.

Files are read with skops, never pickle: :meth:`SklearnTarget.from_skops` refuses any
type outside skops' default trusted set unless the caller names it in ``trusted``.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from bastion.targets import InputSpec
>>> from bastion.targets.sklearn_target import SklearnTarget
>>> x = np.array([[0.0], [0.2], [0.8], [1.0]], dtype=np.float32)
>>> est = LogisticRegression().fit(x, ["no", "no", "yes", "yes"])
>>> t = SklearnTarget(est, input_spec=InputSpec(shape=(1,), lower=0.0, upper=1.0),
...                   classes=["yes", "no"])
>>> t.column_index_.tolist()  # estimator column 0 ("no") is Bastion class 1
[1, 0]
>>> t.predict(np.array([[0.9]], dtype=np.float32)).tolist()
[0]
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bastion.errors import DataError, TargetError
from bastion.targets._common import LabelMapper, read_model_bytes, synthetic_rows
from bastion.targets.base import Capability, Target
from bastion.targets.spec import InputSpec

__all__ = ["SklearnTarget"]

log = logging.getLogger(__name__)


class SklearnTarget(Target):
    """A fitted scikit-learn classifier or :class:`~sklearn.pipeline.Pipeline`.

    Parameters
    ----------
    estimator : object
        A fitted estimator with ``predict`` (and ideally ``predict_proba``). Inputs are
        flattened to ``(n, n_features)`` before they reach it.
    input_spec : InputSpec
    classes : sequence of str
        Class names; see the module docstring for how ``estimator.classes_`` maps.
    name : str
    query_budget : int or None

    Attributes
    ----------
    column_index_ : numpy.ndarray
        Bastion class index of each column of the estimator's output.
    mode_ : str
        ``"proba"``, ``"decision"`` or ``"labels"``.
    """

    kind = "sklearn"
    provides: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS, Capability.TRAINING}
    )

    def __init__(
        self,
        estimator: Any,
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        name: str = "sklearn",
        query_budget: int | None = None,
    ) -> None:
        super().__init__(
            name=name, input_spec=input_spec, classes=classes, query_budget=query_budget
        )
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        if not hasattr(estimator, "predict"):
            raise TargetError(
                f"{type(estimator).__name__} has no predict method, so it is not a "
                "classifier Bastion can query; wrap a fitted classifier or pipeline."
            )
        try:
            check_is_fitted(estimator)
        except NotFittedError as err:
            raise TargetError(
                f"The {type(estimator).__name__} given as target {name!r} is not fitted; fit "
                "it before wrapping it."
            ) from err
        except TypeError:
            log.debug("%s cannot be checked for fitting; assuming it is", type(estimator))
        self.estimator = estimator
        self.source: str | None = None
        self._mapper = LabelMapper(self.classes)
        est_classes = getattr(estimator, "classes_", None)
        if est_classes is None:
            self.column_index_ = np.arange(self.n_classes)
        else:
            self.column_index_ = self._mapper.to_indices(list(np.asarray(est_classes)))
            if len(set(self.column_index_.tolist())) != len(self.column_index_):
                raise TargetError(
                    f"The estimator's classes {list(est_classes)} map onto the same Bastion "
                    "class twice; declare one class name per estimator class."
                )
        if hasattr(estimator, "predict_proba"):
            self.mode_ = "proba"
        elif hasattr(estimator, "decision_function") and len(self.column_index_) == self.n_classes:
            self.mode_ = "decision"
        else:
            self.mode_ = "labels"

    @classmethod
    def from_skops(
        cls,
        path: str | os.PathLike[str],
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        trusted: Sequence[str] = (),
        name: str | None = None,
        query_budget: int | None = None,
    ) -> SklearnTarget:
        """Load a model saved with :func:`skops.io.dump`.

        skops rebuilds objects from a JSON schema instead of unpickling. Types outside
        its default trusted set (scikit-learn, NumPy and SciPy basics) are refused
        unless listed in ``trusted``; review the file's origin before trusting any.

        Raises
        ------
        TargetError
            If the file is missing, is not a skops file, or holds untrusted types (the
            message lists them).
        """
        import skops.io

        data = read_model_bytes(path)
        try:
            untrusted = list(skops.io.get_untrusted_types(data=data))
        except Exception as err:  # skops raises zip, JSON and key errors for bad files
            raise TargetError(
                f"{path} is not a readable skops file ({type(err).__name__}: {err}); save the "
                "model with skops.io.dump."
            ) from err
        unknown = sorted(set(untrusted) - set(trusted))
        if unknown:
            listed = ", ".join(unknown)
            raise TargetError(
                f"{path} contains types that are not trusted by default: {listed}; if you trust "
                f"the file's origin, pass trusted={unknown!r} (options: {{'trusted': [...]}})."
            )
        try:
            estimator = skops.io.load(io.BytesIO(data), trusted=untrusted)
        except Exception as err:
            raise TargetError(
                f"{path} could not be loaded by skops ({type(err).__name__}: {err}); re-save "
                "it with skops.io.dump from a compatible scikit-learn."
            ) from err
        target = cls(
            estimator,
            input_spec=input_spec,
            classes=classes,
            name=name or Path(path).name,
            query_budget=query_budget,
        )
        target.source = os.fspath(path)
        return target

    # -- capabilities ---------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.LABELS, Capability.TRAINING}
        if self.mode_ == "proba":
            caps.add(Capability.PROBABILITIES)
        elif self.mode_ == "decision":
            caps.add(Capability.LOGITS)
        return frozenset(caps)

    # -- queries --------------------------------------------------------------------
    def _call(self, method: str, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        try:
            return np.asarray(getattr(self.estimator, method)(flat))
        except (ValueError, TypeError, IndexError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise TargetError(
                f"Model {self.name!r} failed on a batch of {flat.shape[1]} features ({first}); "
                f"check that the input spec (shape {tuple(self.input_spec.shape)}) matches the "
                "features the model was fitted on."
            ) from err

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        raw = self._call("predict_proba", x)
        if raw.ndim != 2 or raw.shape[1] != len(self.column_index_):
            raise TargetError(
                f"Model {self.name!r} returned probabilities of shape {raw.shape}; expected one "
                f"column per estimator class ({len(self.column_index_)})."
            )
        out = np.zeros((len(x), self.n_classes), dtype=np.float64)
        out[:, self.column_index_] = raw
        return out

    def _predict_labels(self, x: np.ndarray) -> np.ndarray:
        return self._mapper.to_indices(self._call("predict", x).tolist())

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Decision scores ``(n, n_classes)`` for models without ``predict_proba``.

        A binary margin ``m`` becomes ``(-m/2, m/2)`` so that softmax gives
        ``sigmoid(m)``. Charges ``n`` queries.
        """
        self.require(Capability.LOGITS, who="Asking for logits")
        arr = self._prepare(x)
        self.budget.charge(len(arr))
        raw = self._call("decision_function", arr).astype(np.float64)
        if raw.ndim == 1:
            raw = np.stack([-raw / 2.0, raw / 2.0], axis=1)
        if raw.shape != (len(arr), len(self.column_index_)):
            raise TargetError(
                f"Model {self.name!r} returned decision scores of shape {raw.shape}; expected "
                f"({len(arr)}, {self.n_classes})."
            )
        out = np.empty_like(raw)
        out[:, self.column_index_] = raw
        return out

    # -- training -------------------------------------------------------------------
    def train_copy(self, x: np.ndarray, y: np.ndarray, *, seed: int) -> SklearnTarget:
        """An unfitted clone of the estimator, fitted on ``(x, y)``.

        Every ``random_state`` parameter (including those of pipeline steps) is set to
        ``seed``. Labels are Bastion indices, so the copy's ``classes_`` are indices
        and map to :attr:`classes` directly. No queries are charged.
        """
        from sklearn.base import clone

        arr = self._prepare(x)
        labels = np.asarray(y)
        if labels.shape != (len(arr),) or labels.dtype.kind not in "iu":
            raise DataError(
                f"train_copy needs one integer label per row; got labels of shape {labels.shape} "
                f"and dtype {labels.dtype} for {len(arr)} rows."
            )
        try:
            copy = clone(self.estimator)
        except (TypeError, RuntimeError) as err:
            raise TargetError(
                f"The estimator of {self.name!r} cannot be cloned ({err}); give it a proper "
                "get_params so a fresh copy can be trained."
            ) from err
        seeds = {k: seed for k in copy.get_params(deep=True) if k.endswith("random_state")}
        if seeds:
            copy.set_params(**seeds)
        try:
            copy.fit(arr.reshape(len(arr), -1), labels)
        except (ValueError, TypeError) as err:
            raise TargetError(f"Training a copy of {self.name!r} failed ({err}).") from err
        return SklearnTarget(
            copy,
            input_spec=self.input_spec,
            classes=self.classes,
            name=f"{self.name}-copy-{seed}",
        )

    # -- checks and description -----------------------------------------------------
    def verify(self) -> None:
        """Run two synthetic rows (not charged); :class:`TargetError` if the model rejects them."""
        rows = synthetic_rows(self.input_spec)
        if self.mode_ == "proba":
            self._predict_proba(rows)
        else:
            self._predict_labels(rows)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(estimator=type(self.estimator).__name__, source=self.source, mode=self.mode_)
        return info
