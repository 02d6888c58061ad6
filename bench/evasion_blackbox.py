"""Bastion's black-box and constrained evasion side by side with IBM ART, in one process.

1. **Square attack (L∞) at equal query budgets** on the demo digits CNN (8x8, inputs
   in [0, 1]): Bastion's :func:`~bastion.attacks.evasion.square.square_attack` through a
   ``TorchTarget`` score oracle versus ART's ``SquareAttack`` (``PyTorchClassifier``).
   Every model query of both tools is counted by a wrapper around the same module, per
   sample: Bastion reports its own per-sample counts (checked against the wrapper's
   total); ART is run one sample at a time so that the wrapper's count is that
   sample's. ART's ``max_iter`` is set so that its queries per sample stay within the
   same budget (ART spends three forward passes per iteration: a robustness check and
   two loss evaluations). Success rate = share of correctly classified rows
   misclassified at the end; median queries over the successes. Because one sample at a
   time is slow for ART, ``art_batched`` runs the same ART attack on the whole batch
   once more, for its success rate and time only (per-sample queries are not
   observable then).

2. **Constrained tabular attack** on the synthetic intrusion detector
   (``bastion.data.intrusion``, ``bastion.demo.intrusion``): attack flows, goal
   "benign", every feature moved by at most ``eps`` of its range. Bastion's
   :func:`~bastion.attacks.evasion.constrained_pgd.constrained_attack` (constrained PGD,
   50 steps) versus ART's ``ProjectedGradientDescent`` (50 steps, one random start, the
   same per-feature ``eps`` and step, targeted) with a ``mask`` that freezes the
   immutable features. Both outputs go through the same
   :meth:`FeatureConstraints.validate` check; reported: success rate, success with a
   valid row, and how many rows break each constraint.

Timings are medians over ``--repeat`` runs, alternating the tools; both run with one
torch thread (the models are tiny and the machine is shared).

Usage::

    .venv/bin/python bench/evasion_blackbox.py --json bench-evasion-blackbox.json   # full
    .venv/bin/python bench/evasion_blackbox.py --quick                               # ~2 min
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bastion.attacks.evasion.constrained_pgd import constrained_attack
from bastion.attacks.evasion.constraints import FeatureConstraints
from bastion.attacks.evasion.queries import score_oracle
from bastion.attacks.evasion.square import square_attack
from bastion.data.demo import load_digits_dataset
from bastion.data.intrusion import load_intrusion_dataset
from bastion.demo import train_digits_cnn
from bastion.demo.intrusion import train_intrusion_mlp
from bastion.targets.torch_target import TorchTarget


class Counting(torch.nn.Module):
    """Wraps a model and counts the rows it is asked about (casting ART's float64 input)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        out: torch.Tensor = self.inner(x.float())
        return out


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import art

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "torch": torch.__version__,
        "art": art.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def _median(q: np.ndarray) -> float | None:
    return float(np.median(q)) if len(q) else None


# -- 1. Square ----------------------------------------------------------------------------
def square_bastion(
    net: Counting, x: torch.Tensor, y: torch.Tensor, eps: float, budget: int
) -> dict[str, Any]:
    target = TorchTarget(net, input_spec=_digits_spec(), classes=[str(i) for i in range(10)])
    net.rows = 0
    start = time.perf_counter()
    r = square_attack(score_oracle(target), x, y, norm="linf", eps=eps, n_queries=budget,
                      lower=0.0, upper=1.0, seed=0)  # fmt: skip
    seconds = time.perf_counter() - start
    assert net.rows == r.total_queries == target.queries_used
    assert float((r.x_adv - x).abs().max()) <= eps + 1e-6
    correct = r.clean_correct.numpy()
    won = (r.success & r.clean_correct).numpy()
    return {
        "success_rate": float(won.sum() / correct.sum()),
        "median_queries": _median(r.queries.numpy()[won]),
        "max_queries": int(r.queries.max()),
        "total_queries": int(r.total_queries),
        "seconds": seconds,
    }


def square_art(
    net: Counting, x: torch.Tensor, y: torch.Tensor, eps: float, budget: int
) -> dict[str, Any]:
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                            nb_classes=10, clip_values=(0.0, 1.0))  # fmt: skip
    attack = SquareAttack(clf, norm=np.inf, eps=eps, max_iter=max(1, (budget - 3) // 3),
                          p_init=0.8, nb_restarts=1, batch_size=1, verbose=False)  # fmt: skip
    xs, ys = x.numpy(), y.numpy()
    clean = np.argmax(clf.predict(xs), axis=1) == ys
    queries, won = np.zeros(len(xs), dtype=np.int64), np.zeros(len(xs), dtype=bool)
    np.random.seed(0)
    start = time.perf_counter()
    for i in np.nonzero(clean)[0]:
        net.rows = 0
        adv = attack.generate(xs[i : i + 1], y=ys[i : i + 1]).astype(np.float32)
        queries[i] = net.rows
        assert np.abs(adv - xs[i : i + 1]).max() <= eps + 1e-5
        won[i] = int(np.argmax(clf.predict(adv), axis=1)[0]) != ys[i]
    seconds = time.perf_counter() - start
    return {
        "success_rate": float(won.sum() / clean.sum()),
        "median_queries": _median(queries[won]),
        "max_queries": int(queries.max()),
        "total_queries": int(queries.sum()),
        "seconds": seconds,
    }


def square_art_batched(
    net: Counting, x: torch.Tensor, y: torch.Tensor, eps: float, budget: int
) -> dict[str, Any]:
    """ART on the whole batch at once: its natural speed (per-sample queries unknown)."""
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=net,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    attack = SquareAttack(
        clf, norm=np.inf, eps=eps, max_iter=max(1, (budget - 3) // 3), p_init=0.8,
        nb_restarts=1, batch_size=len(x), verbose=False,
    )  # fmt: skip
    xs, ys = x.numpy(), y.numpy()
    clean = np.argmax(clf.predict(xs), axis=1) == ys
    np.random.seed(0)
    net.rows = 0
    start = time.perf_counter()
    adv = attack.generate(xs, y=ys).astype(np.float32)
    seconds = time.perf_counter() - start
    total = net.rows
    won = (np.argmax(clf.predict(adv), axis=1) != ys) & clean
    return {
        "success_rate": float(won.sum() / clean.sum()),
        "median_queries": None,
        "max_queries": None,
        "total_queries": int(total),
        "seconds": seconds,
    }


def _digits_spec() -> Any:
    from bastion.targets import InputSpec

    return InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)


# -- 2. constrained tabular -------------------------------------------------------------------
def tabular_bastion(
    target: TorchTarget, fc: FeatureConstraints, x: torch.Tensor, y: torch.Tensor, eps: float
) -> dict[str, Any]:
    start = time.perf_counter()
    r = constrained_attack(target, x, y, fc, eps=eps, steps=50, y_target=torch.zeros_like(y))
    seconds = time.perf_counter() - start
    return _tabular_summary(target, fc, x, r.x_adv, eps, seconds, r.clean_correct.numpy())


def tabular_art(
    target: TorchTarget, fc: FeatureConstraints, x: torch.Tensor, y: torch.Tensor, eps: float
) -> dict[str, Any]:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    lo, hi = (b.astype(np.float32) for b in target.input_spec.bounds())
    clf = PyTorchClassifier(
        model=Counting(target.module),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(x.shape[1],),
        nb_classes=2,
        clip_values=(lo, hi),
    )
    radius = (eps * fc.scale).numpy().astype(np.float32)
    attack = ProjectedGradientDescent(
        clf,
        norm=np.inf,
        eps=radius,
        eps_step=radius / 8,
        max_iter=50,
        targeted=True,
        num_random_init=1,
        batch_size=len(x),
        verbose=False,
    )
    mask = np.broadcast_to(target.input_spec.mutable_mask().astype(np.float32), x.shape)
    xs = x.numpy()
    clean = np.argmax(clf.predict(xs), axis=1) != 0
    np.random.seed(0)
    start = time.perf_counter()
    adv = attack.generate(xs, y=np.zeros(len(xs), dtype=np.int64), mask=mask).astype(np.float32)
    seconds = time.perf_counter() - start
    return _tabular_summary(target, fc, x, torch.from_numpy(adv), eps, seconds, clean)


def _tabular_summary(
    target: TorchTarget,
    fc: FeatureConstraints,
    x: torch.Tensor,
    adv: torch.Tensor,
    eps: float,
    seconds: float,
    clean: np.ndarray,
) -> dict[str, Any]:
    with torch.no_grad():
        benign = (target.module(adv).argmax(dim=1) == 0).numpy()
    report = fc.validate(adv, x, eps)
    valid = report.valid.numpy()
    n = int(clean.sum())
    return {
        "success_rate": float((benign & clean).sum() / n),
        "valid_success_rate": float((benign & clean & valid).sum() / n),
        "valid_rows": float(valid.mean()),
        "violations": report.violations,
        "seconds": seconds,
    }


# -- driver ------------------------------------------------------------------------------------
TOOLS = ("bastion", "art", "art_batched")


def _square_line(row: dict[str, Any], tool: str) -> str:
    r = row[tool]
    return (
        f"{tool} success {r['success_rate']:.2f} median q {r['median_queries']} "
        f"max q {r['max_queries']} {r['seconds']:.1f}s"
    )


def _tabular_line(row: dict[str, Any], tool: str) -> str:
    r = row[tool]
    return (
        f"{tool} success {r['success_rate']:.2f} valid-success {r['valid_success_rate']:.2f} "
        f"valid rows {r['valid_rows']:.2f} violations {r['violations']} {r['seconds']:.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and queries")
    parser.add_argument("--repeat", type=int, default=None, help="timing repetitions")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("art").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    n_square, budgets = (30, [300]) if quick else (100, [300, 1000])
    out: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if quick else "full",
        "square": [],
        "tabular": [],
    }

    digits = load_digits_dataset()
    net = Counting(train_digits_cnn(digits).module)
    x = torch.from_numpy(digits.x_test[:n_square])
    y = torch.from_numpy(digits.y_test[:n_square])
    for eps in (0.1, 0.2):
        for budget in budgets:
            runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TOOLS}
            fns = {"bastion": square_bastion, "art": square_art, "art_batched": square_art_batched}
            for rep in range(repeat):
                for tool in TOOLS[rep % 3 :] + TOOLS[: rep % 3]:
                    runs[tool].append(fns[tool](net, x, y, eps, budget))
            row = {"eps": eps, "query_budget": budget, "rows": n_square}
            for tool, results in runs.items():
                row[tool] = {
                    **results[0],
                    "seconds": statistics.median(r["seconds"] for r in results),
                }
            out["square"].append(row)
            print(
                f"square eps={eps} budget={budget}: "
                + "; ".join(_square_line(row, t) for t in row if t in TOOLS)
            )

    flows = load_intrusion_dataset()
    detector = train_intrusion_mlp(flows)
    fc = FeatureConstraints.from_spec(detector.input_spec)
    attacks = flows.y_test == 1
    n_tab = 100 if quick else int(attacks.sum())
    xt = torch.from_numpy(flows.x_test[attacks][:n_tab])
    yt = torch.from_numpy(flows.y_test[attacks][:n_tab])
    for eps in (0.001, 0.01, 0.1):
        runs = {"bastion": [], "art": []}
        for rep in range(repeat):
            order = ("bastion", "art") if rep % 2 == 0 else ("art", "bastion")
            for tool in order:
                fn = tabular_bastion if tool == "bastion" else tabular_art
                runs[tool].append(fn(detector, fc, xt, yt, eps))
        row = {"eps": eps, "rows": n_tab}
        for tool, results in runs.items():
            row[tool] = {**results[0], "seconds": statistics.median(r["seconds"] for r in results)}
        out["tabular"].append(row)
        print(f"tabular eps={eps}: " + "; ".join(_tabular_line(row, t) for t in runs))
    print(json.dumps(out["machine"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
