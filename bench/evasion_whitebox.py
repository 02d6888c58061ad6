"""Bastion's white-box evasion attacks side by side with ART, torchattacks and bare PyTorch.

Two measurements, in one process, on the 8x8 digits of ``bastion.data.demo``:

1. **PGD (L∞, eps 0.1, 40 steps, step 2.5·eps/40, one random start)** on the demo
   CNN and on an adversarially trained CNN (PGD-AT, trained here first), run by

   * a *bare* PyTorch loop of exactly those forward+backward passes -- the
     physical limit;
   * Bastion's :func:`~bastion.attacks.evasion.pgd` through a ``TorchTarget``
     (query accounting included), with per-sample early stop (the default) and with
     ``early_stop=False`` (every row does every step, like the bare loop);
   * ART's ``ProjectedGradientDescent`` (``PyTorchClassifier``, batch = all rows);
   * torchattacks' ``PGD``.

   Tools run alternately (the order rotates each repetition, each repetition with a
   new seed); medians of CPU and wall time are reported. Success rate = share of the
   rows misclassified on the returned inputs, averaged over the repetitions; every
   tool's output is checked against the budget and the [0, 1] bounds.

2. **AutoAttack (L∞, eps 0.1)** on the adversarially trained CNN: Bastion's
   :func:`~bastion.attacks.evasion.auto_attack` (standard version: APGD-CE, APGD-T,
   FAB-T, Square 5000), torchattacks' ``AutoAttack(version="standard")`` (which
   runs its members for 10 iterations, not the standard 100), the same torchattacks
   members with 100 iterations (``MultiAttack``), and ART's
   ``AutoAttack`` with its defaults (APGD-CE and APGD-DLR with 5 random starts each,
   DeepFool, Square 5000 with 5 restarts; ``eps_step = eps``, batch = all rows).
   Robust accuracy = share of rows still classified correctly on the returned inputs
   (lower = stronger attack). ART runs once (it takes minutes); the others
   ``--aa-repeat`` times, alternating.

Usage::

    .venv/bin/python bench/evasion_whitebox.py --json bench-evasion-whitebox.json   # full
    .venv/bin/python bench/evasion_whitebox.py --quick                               # ~3 min
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bastion.attacks.evasion import auto_attack, pgd
from bastion.data.demo import load_digits_dataset
from bastion.demo import digits_cnn, train_digits_cnn
from bastion.targets import InputSpec
from bastion.targets.torch_target import TorchTarget

EPS = 0.1
DEVICE = ["cpu"]  # set from --device before anything records the machine
SPEC = InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)
Attack = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


# -- models -----------------------------------------------------------------------------
def train_pgd_at(x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int) -> torch.nn.Module:
    """Madry-style adversarial training: every batch replaced by its PGD-7 examples."""
    torch.manual_seed(seed)
    mean, std = float(x.mean()), float(x.std())
    net = digits_cnn(mean, std)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    steps, alpha = 7, 2.5 * EPS / 7
    for epoch in range(epochs):
        warm = min(1.0, (epoch + 1) / max(1, epochs // 3))  # ramp the budget up
        for idx in torch.randperm(len(x), generator=gen).split(64):
            xb, yb = x[idx], y[idx]
            net.eval()
            xa = bare_pgd_final(net, xb, yb, EPS * warm, alpha * warm, steps, gen)
            net.train()
            loss = F.cross_entropy(net(xa), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net


# -- the physical limit ------------------------------------------------------------------
def bare_pgd_final(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    gen: torch.Generator,
) -> torch.Tensor:
    """Random start, ``steps`` signed-gradient steps, projection; nothing else."""
    noise = torch.rand(x.shape, generator=gen, device=gen.device) * 2 - 1
    xa = (x + noise.to(x.device) * eps).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        xa = xa.detach() + alpha * grad.sign()
        xa = torch.min(torch.max(xa, x - eps), x + eps).clamp(0, 1)
    return xa


def run_bare(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=x.device).manual_seed(seed)
    xa = bare_pgd_final(model, x, y, EPS, 2.5 * EPS / 40, 40, gen)
    with torch.no_grad():
        model(xa)  # the final check every attack needs
    return xa


# -- Bastion -----------------------------------------------------------------------------
def _target(model: torch.nn.Module) -> TorchTarget:
    device = next(model.parameters()).device
    return TorchTarget(model, input_spec=SPEC, classes=[str(i) for i in range(10)], device=device)


def run_bastion(early_stop: bool) -> Attack:
    def attack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        r = pgd(
            _target(model),
            x,
            y,
            eps=EPS,
            steps=40,
            step_size=2.5 * EPS / 40,
            early_stop=early_stop,
            seed=seed,
        )
        return r.x_adv

    return attack


# -- peers ------------------------------------------------------------------------------
def _art_classifier(model: torch.nn.Module) -> Any:
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="gpu" if next(model.parameters()).is_cuda else "cpu",
    )


def run_art_pgd(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
) -> torch.Tensor:
    from art.attacks.evasion import ProjectedGradientDescent

    np.random.seed(seed)
    attack = ProjectedGradientDescent(
        _art_classifier(model),
        norm=np.inf,
        eps=EPS,
        eps_step=2.5 * EPS / 40,
        max_iter=40,
        num_random_init=1,
        batch_size=len(x),
        verbose=False,
    )
    return torch.from_numpy(attack.generate(x.cpu().numpy(), y.cpu().numpy())).to(x.device)


def run_torchattacks_pgd(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
) -> torch.Tensor:
    import torchattacks

    torch.manual_seed(seed)
    attack = torchattacks.PGD(model, eps=EPS, alpha=2.5 * EPS / 40, steps=40, random_start=True)
    return attack(x, y)


#: CPU seconds of each ensemble member in Bastion's last AutoAttack run.
MEMBER_CPU: dict[str, float] = {}


def run_bastion_auto(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
) -> torch.Tensor:
    mark = [time.process_time()]

    def progress(member: str, _standing: int) -> None:
        MEMBER_CPU[member] = time.process_time() - mark[0]
        mark[0] = time.process_time()

    return auto_attack(_target(model), x, y, eps=EPS, seed=seed, progress=progress).x_adv


def run_torchattacks_auto(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
) -> torch.Tensor:
    import torchattacks

    attack = torchattacks.AutoAttack(
        model, norm="Linf", eps=EPS, version="standard", n_classes=10, seed=seed
    )
    return attack(x, y)


def run_torchattacks_auto100(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
) -> torch.Tensor:
    """torchattacks' members with the standard version's 100 iterations (its own
    ``AutoAttack(version="standard")`` uses 10)."""
    import torchattacks

    attack = torchattacks.MultiAttack(
        [
            torchattacks.APGD(
                model, norm="Linf", eps=EPS, steps=100, n_restarts=1, loss="ce", seed=seed
            ),
            torchattacks.APGDT(
                model, norm="Linf", eps=EPS, steps=100, n_restarts=1, n_classes=10, seed=seed
            ),
            torchattacks.FAB(
                model,
                norm="Linf",
                eps=EPS,
                steps=100,
                n_restarts=1,
                n_classes=10,
                multi_targeted=True,
                seed=seed,
            ),
            torchattacks.Square(
                model, norm="Linf", eps=EPS, n_queries=5000, n_restarts=1, seed=seed
            ),
        ]
    )
    return attack(x, y)


def run_art_auto(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int
) -> torch.Tensor:
    from art.attacks.evasion import AutoAttack

    np.random.seed(seed)
    attack = AutoAttack(
        _art_classifier(model), norm=np.inf, eps=EPS, eps_step=EPS, batch_size=len(x)
    )
    return torch.from_numpy(attack.generate(x.cpu().numpy(), y.cpu().numpy())).to(x.device)


# -- measurement ---------------------------------------------------------------------------
def _check(name: str, x: torch.Tensor, x_adv: torch.Tensor) -> None:
    over = float((x_adv - x).abs().max()) - EPS
    if over > 1e-5 or float(x_adv.min()) < 0 or float(x_adv.max()) > 1:
        raise AssertionError(f"{name} left the budget or the bounds (excess {over:.2e})")


def measure(
    tools: dict[str, Attack],
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    repeats: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """Alternate the tools (rotating order); median wall and CPU time, mean success.

    CPU time (``time.process_time``) is reported next to wall time because the
    machines are shared: with one torch thread it counts this process's own work and
    not the time it waited for a core another process held.
    """
    wall: dict[str, list[float]] = {k: [] for k in tools}
    cpu: dict[str, list[float]] = {k: [] for k in tools}
    fooled: dict[str, list[float]] = {k: [] for k in tools}
    names = list(tools)
    for rep in range(max(repeats.values())):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            if len(wall[name]) >= repeats[name]:
                continue
            c0, t0 = time.process_time(), time.perf_counter()
            x_adv = tools[name](model, x, y, rep)
            if x_adv.is_cuda:  # kernels run asynchronously: wait for them before timing
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            _check(name, x, x_adv)
            with torch.no_grad():
                fooled[name].append(float((model(x_adv).argmax(1) != y).float().mean()))
            logging.info(
                "%s rep %d: %.2fs wall, %.2fs cpu, misclassified %.3f",
                name,
                rep,
                wall[name][-1],
                cpu[name][-1],
                fooled[name][-1],
            )
    return {
        k: {
            "median_s": statistics.median(wall[k]),
            "median_cpu_s": statistics.median(cpu[k]),
            "times_s": wall[k],
            "cpu_s": cpu[k],
            "misclassified": statistics.fmean(fooled[k]),
            "misclassified_runs": fooled[k],
        }
        for k in tools
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with Path("/proc/cpuinfo").open() as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import art
    import torchattacks

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "art": art.__version__,
        "torchattacks": torchattacks.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "device": DEVICE[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, about 3 minutes")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeat", type=int, help="PGD repetitions per tool (default 7, quick 3)")
    ap.add_argument("--aa-repeat", type=int, help="AutoAttack repetitions (default 3, quick 1)")
    ap.add_argument("--aa-samples", type=int, help="AutoAttack rows (default 100, quick 10)")
    ap.add_argument("--at-epochs", type=int, help="PGD-AT epochs (default 30, quick 10)")
    ap.add_argument("--skip-art-auto", action="store_true", help="leave out ART's AutoAttack")
    ap.add_argument("--only", choices=["pgd", "auto"], help="run one of the two measurements")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    ap.add_argument(
        "--tile",
        type=int,
        default=1,
        help="PGD only: repeat the 451 test rows this many times, so a GPU sees a batch "
        "large enough to be busy (default 1)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore")
    logging.getLogger("art").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    repeat = args.repeat or (3 if args.quick else 7)
    aa_repeat = args.aa_repeat or (1 if args.quick else 3)
    aa_n = args.aa_samples or (10 if args.quick else 100)
    epochs = args.at_epochs or (10 if args.quick else 30)

    data = load_digits_dataset()
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x, y = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    t0 = time.perf_counter()
    standard = train_digits_cnn(data).module
    robust = train_pgd_at(x_train, y_train, epochs=epochs, seed=0)
    device = torch.device(args.device)
    DEVICE[0] = str(device)
    standard, robust, x, y = standard.to(device), robust.to(device), x.to(device), y.to(device)
    logging.info("trained both models in %.1fs", time.perf_counter() - t0)
    results: dict[str, Any] = {
        "machine": machine(),
        "eps": EPS,
        "args": vars(args) | {"json": str(args.json) if args.json else None},
    }

    pgd_tools: dict[str, Attack] = {
        "bare PyTorch loop": run_bare,
        "Bastion pgd": run_bastion(True),
        "Bastion pgd (early_stop=False)": run_bastion(False),
        "ART ProjectedGradientDescent": run_art_pgd,
        "torchattacks PGD": run_torchattacks_pgd,
    }
    results["pgd"] = {}
    xp, yp = (x.repeat(args.tile, 1, 1, 1), y.repeat(args.tile)) if args.tile > 1 else (x, y)
    for label, model in (("demo CNN", standard), ("PGD-AT CNN", robust)):
        if args.only == "auto":
            break
        with torch.no_grad():
            clean = float((model(xp).argmax(1) == yp).float().mean())
        rows = measure(pgd_tools, model, xp, yp, dict.fromkeys(pgd_tools, repeat))
        results["pgd"][label] = {"clean_accuracy": clean, "n": len(xp), "tools": rows}

    if args.only == "pgd":
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    xs, ys = x[:aa_n], y[:aa_n]
    with torch.no_grad():
        clean_aa = float((robust(xs).argmax(1) == ys).float().mean())
    aa_tools: dict[str, Attack] = {
        "Bastion auto_attack": run_bastion_auto,
        "torchattacks AutoAttack (its standard: 10 iterations)": run_torchattacks_auto,
        "torchattacks members, 100 iterations": run_torchattacks_auto100,
    }
    reps = dict.fromkeys(aa_tools, aa_repeat)
    if not args.skip_art_auto:
        aa_tools["ART AutoAttack"] = run_art_auto
        reps["ART AutoAttack"] = 1
    rows = measure(aa_tools, robust, xs, ys, reps)
    for row in rows.values():
        row["robust_accuracy"] = 1 - row["misclassified"]
    results["auto"] = {
        "model": "PGD-AT CNN",
        "n": aa_n,
        "clean_accuracy": clean_aa,
        "tools": rows,
        "bastion_member_cpu_s_last_run": dict(MEMBER_CPU),
    }
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"\nmachine: nproc {m['nproc']}, {m['cpu']}, torch {m['torch']} "
        f"({m['torch_threads']} thread(s)), ART {m['art']}, torchattacks {m['torchattacks']}"
    )
    for label, block in results.get("pgd", {}).items():
        tools = block["tools"]
        bare, art = tools["bare PyTorch loop"], tools["ART ProjectedGradientDescent"]
        print(
            f"\nPGD L∞ eps {results['eps']}, 40 steps, {block['n']} rows, {label} "
            f"(clean accuracy {block['clean_accuracy']:.3f}); ratios of median CPU time "
            "(wall in brackets)"
        )
        print(
            f"{'tool':34s} {'cpu s':>7s} {'wall s':>7s} {'x bare':>13s} {'x ART':>13s} "
            f"{'success':>8s}"
        )
        for name, row in tools.items():
            rb = row["median_cpu_s"] / bare["median_cpu_s"]
            ra = row["median_cpu_s"] / art["median_cpu_s"]
            wb = row["median_s"] / bare["median_s"]
            wa = row["median_s"] / art["median_s"]
            print(
                f"{name:34s} {row['median_cpu_s']:7.3f} {row['median_s']:7.3f} "
                f"{rb:5.2f} ({wb:4.2f}) {ra:5.2f} ({wa:4.2f}) {row['misclassified']:8.3f}"
            )
    block = results.get("auto")
    if block:
        print(
            f"\nAutoAttack L∞ eps {results['eps']}, {block['n']} rows, {block['model']} "
            f"(clean accuracy {block['clean_accuracy']:.3f})"
        )
        print(f"{'tool':54s} {'cpu s':>8s} {'wall s':>8s} {'robust acc':>10s}")
        for name, row in block["tools"].items():
            print(
                f"{name:54s} {row['median_cpu_s']:8.2f} {row['median_s']:8.2f} "
                f"{row['robust_accuracy']:10.3f}"
            )
        parts = ", ".join(f"{k} {v:.1f}" for k, v in block["bastion_member_cpu_s_last_run"].items())
        print(f"Bastion's members, CPU s of its last run: {parts}")


if __name__ == "__main__":
    main()
