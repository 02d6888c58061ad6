"""``output.abstention``: withhold doubtful answers and queue them for review.

After the model answers, the guard looks at each row's scores: the top score
(confidence) and the gap between the two highest (margin). A row whose margin or
confidence is below its threshold is *abnormal*: the model is close to a decision
boundary, where natural errors concentrate and where small adversarial
perturbations push inputs (Goodfellow et al. 2015). Instead of a possibly wrong
answer, the whole request is withheld: the caller gets HTTP 202 with
``"status": "needs_review"`` and a ``review_id``, and the request, the withheld
answer and the doubtful rows go to the review queue
(:mod:`bastion.guards.review`). This is the fallback CWE-1039 asks for — handle
the inputs the classifier cannot be trusted on — in the "reject option" tradition
of Chow (1970), "On optimum recognition error and reject tradeoff".

Thresholds are either given or calibrated with :meth:`AbstentionGuard.calibrated`
on the model's scores for held-out in-distribution data: the margin threshold is the
``rate`` quantile of those margins, so about ``rate`` of normal traffic rows is
sent to review (measure it on your data; a batch is withheld when any row is).
Label-only outputs carry no scores and pass unchanged.

Examples
--------
>>> import numpy as np
>>> from bastion.guards.base import GuardRequest, GuardResponse
>>> from bastion.guards.review import MemoryReviewQueue
>>> queue = MemoryReviewQueue()
>>> guard = AbstentionGuard(queue, min_margin=0.2)
>>> req = GuardRequest(principal="p", model="m", inputs=np.zeros((2, 3)))
>>> guard.after(req, GuardResponse(np.array([[0.9, 0.1], [0.8, 0.2]]))).action.value
'allow'
>>> held = guard.after(req, GuardResponse(np.array([[0.9, 0.1], [0.55, 0.45]])))
>>> held.http_status, held.payload.fields["status"], len(queue.pending())
(202, 'needs_review', 1)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from bastion.errors import UsageError
from bastion.findings import CatalogRefs
from bastion.guards.base import Decision, Guard, GuardMeta, GuardRequest, GuardResponse
from bastion.guards.outcome import deny
from bastion.guards.pipeline import REQUEST_ID_HEADER
from bastion.guards.review import ReviewQueue

__all__ = ["AbstentionGuard", "margins"]


def margins(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row confidence (top score) and margin (top minus runner-up).

    Examples
    --------
    >>> conf, margin = margins(np.array([[0.7, 0.2, 0.1]]))
    >>> float(conf[0]), round(float(margin[0]), 3)
    (0.7, 0.5)
    """
    s = np.asarray(scores, dtype=np.float64)
    top2 = np.sort(s, axis=1)[:, -2:]
    return top2[:, 1], top2[:, 1] - top2[:, 0]


class AbstentionGuard(Guard):
    """Withholds answers with abnormally low margin or confidence (HTTP 202, queued).

    Citations: Chow 1970 (reject option); see the module docstring.

    Parameters
    ----------
    queue : ReviewQueue
        Where withheld requests go.
    min_margin : float or None
        Rows with top-minus-runner-up below this are doubtful.
    min_confidence : float or None
        Rows with a top score below this are doubtful.
    """

    meta: ClassVar[GuardMeta] = GuardMeta(
        id="output.abstention",
        title="Abstain on uncertain answers and queue them for review",
        catalog=CatalogRefs(
            owasp=["ML01"],
            failure_modes=["FM1", "FM14", "FM15"],
            atlas_mitigations=["AML.M0015"],
            cwe=["CWE-1039"],
        ),
        order=60,
    )

    def __init__(
        self,
        queue: ReviewQueue,
        *,
        min_margin: float | None = None,
        min_confidence: float | None = None,
    ) -> None:
        if min_margin is None and min_confidence is None:
            raise UsageError(
                "output.abstention needs min_margin, min_confidence or both; or build it with "
                "AbstentionGuard.calibrated(queue, scores, rate=...)."
            )
        for name, value in (("min_margin", min_margin), ("min_confidence", min_confidence)):
            if value is not None and not 0 <= value <= 1:
                raise UsageError(f"{name} must be in [0, 1]; got {value!r}.")
        self.queue = queue
        self.min_margin = min_margin
        self.min_confidence = min_confidence

    @classmethod
    def calibrated(
        cls,
        queue: ReviewQueue,
        scores: Any,
        *,
        rate: float = 0.02,
        on: Literal["margin", "confidence"] = "margin",
    ) -> AbstentionGuard:
        """A guard whose threshold sends about ``rate`` of rows like ``scores`` to review.

        Parameters
        ----------
        scores : array-like, shape (n, n_classes)
            The model's scores on held-out in-distribution data.
        rate : float
            Share of such rows to withhold, in (0, 0.5].
        """
        if not 0 < rate <= 0.5:
            raise UsageError(f"The abstention rate must be in (0, 0.5]; got {rate!r}.")
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] < 2 or len(arr) < 1 / rate:
            raise UsageError(
                f"Calibrating abstention at rate {rate:g} needs scores of shape (n, n_classes) "
                f"with n >= {int(np.ceil(1 / rate))}; got {arr.shape}."
            )
        conf, margin = margins(arr)
        threshold = float(np.quantile(margin if on == "margin" else conf, rate))
        if on == "margin":
            return cls(queue, min_margin=threshold)
        return cls(queue, min_confidence=threshold)

    def doubtful(self, scores: np.ndarray) -> np.ndarray:
        """Boolean per row: below the margin or confidence threshold."""
        conf, margin = margins(scores)
        out = np.zeros(len(conf), dtype=bool)
        if self.min_margin is not None:
            out |= margin < self.min_margin
        if self.min_confidence is not None:
            out |= conf < self.min_confidence
        return out

    def after(self, request: GuardRequest, response: GuardResponse) -> Decision:
        """Queue the request and answer 202 "needs review" when any row is doubtful."""
        scores = np.asarray(response.outputs)
        if scores.ndim != 2 or scores.shape[1] < 2:
            return Decision.allow()
        rows = np.flatnonzero(self.doubtful(scores))
        if len(rows) == 0:
            return Decision.allow()
        conf, margin = margins(scores[rows])
        reason = (
            f"{len(rows)} of {len(scores)} row(s) are too uncertain to answer (lowest margin "
            f"{float(margin.min()):.3f}, confidence {float(conf.min()):.3f}); queued for review."
        )
        review_id = self.queue.add(
            request_id=request.headers.get(REQUEST_ID_HEADER, ""),
            principal=request.principal,
            model=request.model,
            reason=reason,
            rows=[int(r) for r in rows],
            inputs=np.asarray(request.inputs),
            outputs=scores,
        )
        return deny(
            reason,
            http_status=202,
            fields={
                "status": "needs_review",
                "review_id": review_id,
                "rows": [int(r) for r in rows],
            },
            events=({"reason": "needs review", "review_id": review_id, "rows": len(rows)},),
        )
