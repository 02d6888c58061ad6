"""Bastion's artifact scanner side by side with modelscan, picklescan and fickling.

Two measurements, in one process:

1. **Detection** on the generated corpus of ``tests/artifacts/corpus.py``: every
   malicious sample (dangerous callables, container tricks, parser-confusion tricks,
   model formats) and every benign artifact (torch state dicts and checkpoints,
   TorchScript, scikit-learn pickles and joblib dumps, NumPy arrays, safetensors). For
   each tool and file: ``flagged``, ``clean``, or ``error`` (the tool raised or said it
   failed). A malicious file counts as detected only when flagged; a benign file
   flagged is a false positive. Files are written with their corpus names, so
   extension-driven tools see the usual extensions.
2. **Throughput** on a generated ``torch.save`` checkpoint (``--size-mb``, default
   1024): MB/s of each tool against SHA-256 of the same bytes (the physical limit: a
   scanner has to read everything). Tools run alternately, ``--repeat`` times, after one
   warm-up pass so that every run reads from the page cache; medians are reported.

Usage::

    .venv/bin/python bench/scanner.py --json bench-scanner.json          # full
    .venv/bin/python bench/scanner.py --quick                            # ~1 minute
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.artifacts.corpus import benign_samples, malicious_samples

from bastion.artifacts import scan_file

Verdict = str  # "flagged" | "clean" | "error"


def bastion_verdict(path: Path) -> Verdict:
    return "clean" if scan_file(path).safe else "flagged"


def picklescan_verdict(path: Path) -> Verdict:
    from picklescan.scanner import scan_file_path

    result = scan_file_path(str(path))
    if result.infected_files or result.issues_count:
        return "flagged"
    return "error" if result.scan_err else "clean"


def modelscan_verdict(path: Path) -> Verdict:
    from modelscan.modelscan import ModelScan

    result = ModelScan().scan(str(path))
    if result["issues"]:
        return "flagged"
    return "error" if result["errors"] else "clean"


def fickling_verdict(path: Path) -> Verdict:
    import fickling

    return "clean" if fickling.is_likely_safe(str(path)) else "flagged"


TOOLS: dict[str, Callable[[Path], Verdict]] = {
    "bastion": bastion_verdict,
    "modelscan": modelscan_verdict,
    "picklescan": picklescan_verdict,
    "fickling": fickling_verdict,
}


def _quiet(tool: Callable[[Path], Verdict], path: Path) -> Verdict:
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return tool(path)
    except Exception:
        return "error"


def detection(folder: Path) -> dict[str, object]:
    canary = folder / "CANARY"
    bad_dir, good_dir = folder / "malicious", folder / "benign"
    bad_dir.mkdir()
    good_dir.mkdir()
    bad = []
    for sample in malicious_samples(canary):
        (bad_dir / sample.name).write_bytes(sample.data)
        bad.append(bad_dir / sample.name)
    good = []
    for name, write in benign_samples(good_dir).items():
        write(good_dir / name)
        good.append(good_dir / name)
    table: dict[str, dict[str, object]] = {}
    for tool_name, tool in TOOLS.items():
        verdicts_bad = {p.name: _quiet(tool, p) for p in bad}
        verdicts_good = {p.name: _quiet(tool, p) for p in good}
        table[tool_name] = {
            "malicious_detected": sum(v == "flagged" for v in verdicts_bad.values()),
            "malicious_missed": sorted(k for k, v in verdicts_bad.items() if v == "clean"),
            "malicious_errors": sorted(k for k, v in verdicts_bad.items() if v == "error"),
            "benign_false_positives": sorted(k for k, v in verdicts_good.items() if v == "flagged"),
            "benign_errors": sorted(k for k, v in verdicts_good.items() if v == "error"),
        }
    if canary.exists():
        raise SystemExit("a payload ran during the benchmark; the canary file exists")
    return {"n_malicious": len(bad), "n_benign": len(good), "tools": table}


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def throughput(folder: Path, size_mb: int, repeat: int) -> dict[str, object]:
    import torch

    path = folder / "large.pt"
    n_tensors = max(1, size_mb // 16)
    gen = torch.Generator().manual_seed(0)
    state = {f"layer{i}.weight": torch.randn(4096, 1024, generator=gen) for i in range(n_tensors)}
    torch.save(state, path)
    del state
    size = path.stat().st_size
    runners: dict[str, Callable[[Path], object]] = {"sha256": _sha256}
    runners.update({name: lambda p, t=tool: _quiet(t, p) for name, tool in TOOLS.items()})
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up: fill the page cache, import everything
        run(path)
    for _ in range(repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            run(path)
            times[name].append(time.perf_counter() - start)
    verdicts = {name: _quiet(tool, path) for name, tool in TOOLS.items()}
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    mb = size / 1e6
    return {
        "file_bytes": size,
        "repeat": repeat,
        "verdicts": verdicts,
        "median_seconds": medians,
        "mb_per_s": {name: mb / t for name, t in medians.items()},
        "ratio_to_sha256": {name: medians["sha256"] / t for name, t in medians.items()},
    }


def machine() -> dict[str, str]:
    import torch

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 MB checkpoint, 2 repeats")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    size, repeat = (128, 2) if args.quick else (args.size_mb, args.repeat)
    logging.disable(logging.CRITICAL)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
        folder = Path(tmp)
        result = {
            "machine": machine(),
            "detection": detection(folder),
            "throughput": throughput(folder, size, repeat),
        }
    det = result["detection"]
    print(f"corpus: {det['n_malicious']} malicious, {det['n_benign']} benign")  # type: ignore[index]
    print(f"{'tool':<11} {'detected':>9} {'missed':>7} {'errors':>7} {'FP':>4} {'benign err':>10}")
    for name, row in det["tools"].items():  # type: ignore[index]
        print(
            f"{name:<11} {row['malicious_detected']:>9} {len(row['malicious_missed']):>7} "
            f"{len(row['malicious_errors']):>7} {len(row['benign_false_positives']):>4} "
            f"{len(row['benign_errors']):>10}"
        )
    thr = result["throughput"]
    print(
        f"throughput on a {thr['file_bytes'] / 1e6:.0f} MB torch checkpoint (median of {repeat}):"
    )  # type: ignore[index]
    for name, rate in thr["mb_per_s"].items():  # type: ignore[index]
        verdict = thr["verdicts"].get(name, "")  # type: ignore[index]
        ratio = thr["ratio_to_sha256"][name]  # type: ignore[index]
        print(f"  {name:<11} {rate:9.1f} MB/s  ({ratio:.2f}x sha256)  {verdict}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
