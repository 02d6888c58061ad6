"""A small, deterministic training loop for torch classifiers.

Used by :meth:`TorchTarget.train_copy <bastion.targets.torch_target.TorchTarget.train_copy>`
(shadow models for membership inference, retraining in remedies) and by the demo
models. It is deliberately plain: Adam, cross-entropy on logits, shuffled
mini-batches drawn from a seeded generator, no global random state touched.

Examples
--------
>>> import numpy as np, torch
>>> from bastion.targets.torch_training import TrainOptions, fit_module
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(64, 2)).astype(np.float32)
>>> y = (x[:, 0] > 0).astype(np.int64)
>>> net = torch.nn.Linear(2, 2)
>>> _ = fit_module(net, x, y, seed=0, options=TrainOptions(epochs=30, lr=0.05))
>>> float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean()) > 0.9
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bastion.errors import DataError, UsageError

__all__ = ["TrainFn", "TrainOptions", "fit_module"]

log = logging.getLogger(__name__)

#: A user-supplied training function: ``(x, y, seed) -> trained module``.
TrainFn = Callable[[np.ndarray, np.ndarray, int], torch.nn.Module]


@dataclass(frozen=True)
class TrainOptions:
    """Settings of the built-in loop.

    Parameters
    ----------
    epochs : int
        Passes over the training data.
    batch_size : int
        Rows per optimisation step.
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam weight decay (L2 penalty).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0

    def validate(self) -> None:
        """Raise :class:`UsageError` with one sentence if a setting is out of range."""
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(
                f"The 'epochs' training option must be an integer >= 1; got {self.epochs!r}."
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(
                "The 'batch_size' training option must be an integer >= 1; got "
                f"{self.batch_size!r}."
            )
        if not self.lr > 0:
            raise UsageError(f"The 'lr' training option must be a float > 0; got {self.lr!r}.")
        if not self.weight_decay >= 0:
            raise UsageError(
                "The 'weight_decay' training option must be a float >= 0; got "
                f"{self.weight_decay!r}."
            )


def fit_module(
    module: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    options: TrainOptions | None = None,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """Train ``module`` in place on ``(x, y)`` and return it in eval mode.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a float batch ``(n, *row_shape)`` to logits ``(n, n_classes)``.
    x : numpy.ndarray
        Inputs, ``(n, *row_shape)``; cast to float32.
    y : numpy.ndarray
        Integer labels ``0..K-1``, shape ``(n,)``.
    seed : int
        Seeds the shuffling (and nothing global).
    options : TrainOptions or None
        Loop settings; defaults to :class:`TrainOptions()`.
    device : torch.device or str
        Where to train.

    Returns
    -------
    torch.nn.Module
        The same module, trained, in eval mode.
    """
    opts = options or TrainOptions()
    opts.validate()
    if len(x) != len(y) or len(x) == 0:
        raise DataError(
            f"Training needs as many labels as rows and at least one row; got {len(x)} rows "
            f"and {len(y)} labels."
        )
    dev = torch.device(device)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
    module.to(dev).train()
    optimiser = torch.optim.Adam(module.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n = len(xt)
    for epoch in range(opts.epochs):
        order = torch.randperm(n, generator=generator).to(dev)
        total = 0.0
        for start in range(0, n, opts.batch_size):
            idx = order[start : start + opts.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(module(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        log.debug("epoch %d/%d: mean loss %.4f", epoch + 1, opts.epochs, total / n)
    return module.eval()
