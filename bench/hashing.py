"""Manifest hashing throughput: Bastion vs OpenSSF model-signing vs plain sha256.

What is measured: the time to hash a model folder into a manifest (no signing; the
signature itself costs microseconds), on the same bytes, in one process, alternating
the contenders within each repetition, with the files in the page cache (one warm-up
pass first). Medians over ``--repeat`` repetitions.

Contenders
----------
``sha256 sequential``
    the physical limit for one core: ``hashlib.sha256`` over every file in turn,
    1 MiB reads (what ``sha256sum`` does).
``bastion``
    :func:`bastion.artifacts.manifest.build_manifest` with the default workers
    (usable CPUs) and the default 512 MiB shard size, plus one run with a shard size
    small enough that the large file is split across all workers.
``model-signing files`` / ``model-signing shards``
    the OpenSSF ``model_signing.hashing.Config`` with its file serialisation and its
    shard serialisation (1 GB shards by default; the same small shard size as above
    for the second row), both SHA-256.

The folder holds one large file (``--big-mib``) and ``--small-files`` files of 64 KiB,
random bytes.

Usage::

    .venv/bin/python bench/hashing.py --quick
    .venv/bin/python bench/hashing.py --big-mib 2048 --small-files 2000 --repeat 5 \\
        --json bench-hashing.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bastion.artifacts.manifest import build_manifest
from bastion.artifacts.tree_hash import default_workers


def make_folder(root: Path, big_mib: int, small_files: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1024 * 1024)
    with (root / "model.bin").open("wb") as handle:
        for i in range(big_mib):
            handle.write(block[i % 97 :] + block[: i % 97])  # distinct blocks, cheap to make
    shards = root / "tokenizer"
    shards.mkdir(exist_ok=True)
    for i in range(small_files):
        (shards / f"part-{i:05d}.bin").write_bytes(os.urandom(64 * 1024))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def sha256_sequential(root: Path) -> None:
    buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb", buffering=0) as handle:
            while n := handle.readinto(buffer):
                digest.update(view[:n])


def contenders(small_shard: int) -> dict[str, Callable[[Path], object]]:
    result: dict[str, Callable[[Path], object]] = {
        "sha256 sequential (1 core)": sha256_sequential,
        "bastion (512 MiB shards)": lambda root: build_manifest(root),
        f"bastion ({small_shard >> 20} MiB shards)": lambda root: build_manifest(
            root, shard_size=small_shard
        ),
    }
    try:
        import model_signing.hashing as ms_hashing
    except ImportError:
        return result
    result["model-signing files"] = lambda root: (
        ms_hashing.Config().use_file_serialization(hashing_algorithm="sha256").hash(root)
    )
    result[f"model-signing shards ({small_shard >> 20} MiB)"] = lambda root: (
        ms_hashing.Config()
        .use_shard_serialization(hashing_algorithm="sha256", shard_size=small_shard)
        .hash(root)
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB, 200 files, 3 repeats")
    parser.add_argument("--big-mib", type=int, default=2048)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--folder", type=Path, default=None, help="reuse/keep this folder")
    args = parser.parse_args()
    if args.quick:
        args.big_mib, args.small_files, args.repeat = 256, 200, 3

    workers = default_workers()
    small_shard = max(1, args.big_mib // max(workers, 1)) * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
        root = args.folder or Path(tmp) / "model"
        total = make_folder(root, args.big_mib, args.small_files)
        runs = contenders(small_shard)
        for fn in runs.values():  # warm the page cache and imports
            fn(root)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn(root)
                times[name].append(time.perf_counter() - start)

    base = statistics.median(times["sha256 sequential (1 core)"])
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append(
            {
                "contender": name,
                "median_s": round(median, 4),
                "mb_per_s": round(total / median / 1e6, 1),
                "vs_sha256_sequential": round(base / median, 2),
                "samples_s": [round(s, 4) for s in samples],
            }
        )
    machine = {
        "nproc": os.cpu_count(),
        "workers": workers,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "bytes": total,
        "files": args.small_files + 1,
        "repeat": args.repeat,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(
        f"{total / 1e6:.0f} MB in {args.small_files + 1} files, {workers} workers, "
        f"median of {args.repeat}"
    )
    print(f"{'contender':36} {'median s':>9} {'MB/s':>8} {'x sha256 seq':>13}")
    for row in rows:
        print(
            f"{row['contender']:36} {row['median_s']:9.3f} {row['mb_per_s']:8.1f} "
            f"{row['vs_sha256_sequential']:13.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
