"""Regenerate the small model files the example systems point at.

``examples/systems/cheque-digit-reader.yaml`` and ``hospital-diagnosis.yaml`` name real
models so that the assessment ``bastion threat-model --emit-assessment`` writes for them
runs as it is; ``examples/breast-cancer.yaml`` and ``examples/digits.yaml`` assess the same
files. The files are committed (about 200 kB together); this script trains Bastion's two
demo models again (deterministic for a seed, a few seconds on a laptop CPU) and writes
them here:

* ``models/digits_cnn.pt`` - a small CNN on scikit-learn's 8x8 digits (TorchScript);
* ``models/breast_cancer.skops`` - scaler + logistic regression on the breast-cancer
  measurements (skops);
* ``models/demo_models.json`` - each model's input spec, classes and adapter options.

Run it from the repository root::

    .venv/bin/python examples/make_models.py
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bastion.demo import save_demo_models

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Train and save the demo models into ``examples/models`` (or ``--output``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=HERE / "models", help="target folder")
    parser.add_argument("--seed", type=int, default=0, help="training and split seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = save_demo_models(args.output, seed=args.seed)
    for name, path in paths.items():
        logging.info("%s: %s (%d bytes)", name, path, path.stat().st_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
