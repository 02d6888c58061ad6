"""PyTorch models as white-box targets.

:class:`TorchTarget` wraps a ``torch.nn.Module`` that maps a float batch
``(n, *input_spec.shape)`` to logits ``(n, n_classes)``. Besides the NumPy entry
points every target has, it offers a tensor-native API for attacks: tensors stay on
:attr:`TorchTarget.device` and :meth:`TorchTarget.forward` keeps the autograd graph,
while still charging the query budget one query per row.

Models come from memory, a TorchScript archive (:meth:`TorchTarget.from_torchscript`)
or a ``torch.export`` archive (:meth:`TorchTarget.from_export`). Neither loader runs
Python's pickle on the file; see :mod:`bastion.targets.torch_archive` for what is
checked and why ``torch.export.load`` needs those checks.

Examples
--------
>>> import numpy as np, torch
>>> from bastion.targets import InputSpec
>>> from bastion.targets.torch_target import TorchTarget
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
>>> t = TorchTarget(net, input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0),
...                 classes=["a", "b", "c"], module_factory=lambda: torch.nn.Linear(4, 3))
>>> t.predict_proba(np.full((2, 4), 0.5, dtype=np.float32)).shape
(2, 3)
>>> x = torch.full((5, 4), 0.5, requires_grad=True)
>>> t.forward(x).sum().backward(); tuple(x.grad.shape), t.queries_used
((5, 4), 7)
>>> sorted(c.value for c in t.capabilities)
['gradients', 'labels', 'logits', 'probabilities', 'training']
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from bastion.errors import DataError, TargetError, UsageError
from bastion.targets._common import read_model_bytes, synthetic_rows
from bastion.targets.base import Capability, Target
from bastion.targets.spec import InputSpec
from bastion.targets.torch_archive import load_export_program, load_torchscript_module
from bastion.targets.torch_embeddings import layer_reader
from bastion.targets.torch_training import TrainFn, TrainOptions, fit_module

__all__ = ["TorchTarget", "resolve_device"]

log = logging.getLogger(__name__)

_BASE = frozenset(
    {Capability.LABELS, Capability.PROBABILITIES, Capability.LOGITS, Capability.GRADIENTS}
)
# What a target has, by (has an embedding layer, can train a copy).
_CAPABILITIES = {
    (embeds, trains): _BASE
    | ({Capability.EMBEDDINGS} if embeds else set())
    | ({Capability.TRAINING} if trains else set())
    for embeds in (False, True)
    for trains in (False, True)
}
_CPU = torch.device("cpu")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (CUDA when available) as a device.

    Raises
    ------
    UsageError
        If the name is not a device torch knows.
    TargetError
        If CUDA is asked for but not available.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(
            f"The 'device' option must be 'cpu', 'cuda', 'cuda:N' or 'auto'; got {device!r}."
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TargetError(
            f"Device {device!r} was asked for but CUDA is not available here; use "
            "device='cpu' or device='auto'."
        )
    return dev


class TorchTarget(Target):
    """A ``torch.nn.Module`` classifier returning logits.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(n, *input_spec.shape)`` float tensors to logits ``(n, n_classes)``;
        normalisation belongs inside it. It is moved to ``device`` and put in eval mode
        (in place).
    input_spec : InputSpec
        Shape, dtype and bounds of one raw input row.
    classes : sequence of str
        Class names in logit order.
    name : str
    query_budget : int or None
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    batch_size : int
        Rows per forward pass in the NumPy entry points.
    embedding_layer : str or None
        Dotted name of a submodule whose output is the embedding (e.g. the
        penultimate layer); enables :meth:`embeddings`. Read with a forward hook, or,
        for TorchScript modules (which refuse hooks), by running a ``Sequential``
        prefix of the model.
    module_factory : callable or None
        Builds a fresh, untrained module of the same architecture; enables
        :meth:`train_copy` with the built-in loop (:func:`fit_module`).
    trainer : callable or None
        ``trainer(x, y, seed) -> module`` training a fresh module your own way; takes
        precedence over ``module_factory``.
    train_options : TrainOptions or None
        Settings of the built-in loop (epochs, batch size, learning rate).
    """

    kind = "torch"
    provides: ClassVar[frozenset[Capability]] = _BASE | {
        Capability.EMBEDDINGS,
        Capability.TRAINING,
    }

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        name: str = "torch",
        query_budget: int | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        embedding_layer: str | None = None,
        module_factory: Callable[[], torch.nn.Module] | None = None,
        trainer: TrainFn | None = None,
        train_options: TrainOptions | None = None,
    ) -> None:
        super().__init__(
            name=name, input_spec=input_spec, classes=classes, query_budget=query_budget
        )
        if not isinstance(module, torch.nn.Module):
            raise UsageError(
                f"TorchTarget needs a torch.nn.Module; got {type(module).__name__}. Load "
                "files with TorchTarget.from_torchscript or from_export."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(
                f"The 'batch_size' option must be an integer >= 1; got {batch_size!r}."
            )
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.embedding_layer = embedding_layer
        self.module_factory = module_factory
        self.trainer = trainer
        self.train_options = train_options or TrainOptions()
        self.source: str | None = None
        self.format = "module"
        module.to(self.device)
        try:
            module.eval()
        except (NotImplementedError, RuntimeError):
            # torch.export modules refuse .eval(); their mode was fixed at export time.
            log.debug("module %r does not support eval(); using it as exported", name)
        self.module = module
        self._embed: Callable[[torch.Tensor], torch.Tensor] | None = (
            None
            if embedding_layer is None
            else layer_reader(module, embedding_layer, self._run, model_name=name)
        )

    # -- construction from files --------------------------------------------------
    @classmethod
    def from_torchscript(
        cls,
        path: str | os.PathLike[str],
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        name: str | None = None,
        query_budget: int | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        embedding_layer: str | None = None,
    ) -> TorchTarget:
        """Load a ``torch.jit.save`` archive.

        The archive is read once into memory and imported by libtorch's C++ loader,
        which does not use Python's pickle (see :mod:`bastion.targets.torch_archive`).
        TorchScript archives carry neither the input spec nor class names, so both
        are required here.
        """
        data = read_model_bytes(path)
        dev = resolve_device(device)
        module = load_torchscript_module(data, where=str(path), device=dev)
        target = cls(
            module,
            input_spec=input_spec,
            classes=classes,
            name=name or Path(path).name,
            query_budget=query_budget,
            device=dev,
            batch_size=batch_size,
            embedding_layer=embedding_layer,
        )
        target.source, target.format = os.fspath(path), "torchscript"
        return target

    @classmethod
    def from_export(
        cls,
        path: str | os.PathLike[str],
        *,
        input_spec: InputSpec,
        classes: Sequence[str],
        name: str | None = None,
        query_budget: int | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        embedding_layer: str | None = None,
    ) -> TorchTarget:
        """Load a ``torch.export.save`` archive (``.pt2``).

        ``torch.export.load`` would unpickle parts of the archive, ``exec`` its guard
        code and ``eval`` its shape expressions, so the archive is first vetted and
        stripped by :func:`~bastion.targets.torch_archive.check_export_archive`;
        unsafe archives are refused with a :class:`TargetError` naming the problem.
        Export the model in eval mode: an exported graph keeps the mode it was traced
        in. With ``embedding_layer`` the program is unflattened so submodules exist.
        """
        data = read_model_bytes(path)
        program = load_export_program(data, where=str(path))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                module: torch.nn.Module = (
                    torch.export.unflatten(program) if embedding_layer else program.module()
                )
        except Exception as err:  # torch raises assorted errors for odd programs
            raise TargetError(
                f"{path} holds an exported program torch cannot turn into a module ({err}); "
                "re-export it with torch.export.export."
            ) from err
        target = cls(
            module,
            input_spec=input_spec,
            classes=classes,
            name=name or Path(path).name,
            query_budget=query_budget,
            device=device,
            batch_size=batch_size,
            embedding_layer=embedding_layer,
        )
        target.source, target.format = os.fspath(path), "torch.export"
        return target

    # -- capabilities ---------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        embeds = self._embed is not None
        trains = self.trainer is not None or self.module_factory is not None
        return _CAPABILITIES[embeds, trains]

    # -- tensor API -----------------------------------------------------------------
    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        """A NumPy batch as a tensor on :attr:`device` (no validation, no charge)."""
        tensor = torch.from_numpy(np.ascontiguousarray(x))
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, n_classes)`` for ``x`` ``(n, *shape)``, keeping the autograd graph.

        The row shape is checked and ``n`` queries are charged; bounds are not checked
        (attacks project onto them), so this stays cheap inside attack loops.
        """
        if not isinstance(x, torch.Tensor):
            raise UsageError(
                f"TorchTarget.forward takes a torch.Tensor; got {type(x).__name__}. Use "
                "predict_proba or logits for NumPy arrays."
            )
        if x.ndim == 0 or tuple(x.shape[1:]) != tuple(self.input_spec.shape):
            raise DataError(
                f"The input has rows of shape {tuple(x.shape[1:])}, but the model expects "
                f"{tuple(self.input_spec.shape)}; reshape the data or fix the model's input spec."
            )
        self.budget.charge(len(x))
        return self._run(x.to(self.device))

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.module(x)
        except (RuntimeError, ValueError, TypeError, AssertionError, IndexError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise TargetError(
                f"Model {self.name!r} failed on a batch of shape {tuple(x.shape)} ({first}); "
                f"check that the input spec (shape {tuple(self.input_spec.shape)}, dtype "
                f"{self.input_spec.dtype}) matches what the model expects."
            ) from err
        if not isinstance(out, torch.Tensor):
            raise TargetError(
                f"Model {self.name!r} returned {type(out).__name__}, not a tensor of logits; "
                "wrap it so forward returns one (n, n_classes) tensor."
            )
        if out.ndim != 2 or out.shape[1] != self.n_classes:
            raise TargetError(
                f"Model {self.name!r} returned outputs of shape {tuple(out.shape)}; expected "
                f"({len(x)}, {self.n_classes}) for the {self.n_classes} declared classes."
            )
        return out

    def _batched(
        self,
        arr: np.ndarray,
        fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        fresh: bool = False,
    ) -> np.ndarray:
        """``fn`` on ``arr`` in chunks of :attr:`batch_size`, as a new float64 array.

        ``fresh`` says that ``fn`` returns a newly made tensor nothing else holds (so
        one chunk's result need not be copied); a module's output may be a buffer it
        keeps, so it is copied unless converting it already made a new tensor.
        """
        n = len(arr)
        if n == 0:
            return np.zeros((0, self.n_classes), dtype=np.float64)
        with torch.no_grad():
            if n <= self.batch_size:  # one chunk: no slicing, no concatenation
                return _owned_float64(fn(self.to_tensor(arr)), fresh=fresh)
            parts = []
            for start in range(0, n, self.batch_size):
                chunk = self.to_tensor(arr[start : start + self.batch_size])
                parts.append(fn(chunk).detach().to(_CPU, torch.float64).numpy())
        return np.concatenate(parts, axis=0)

    def _softmax(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self._run(x).double(), dim=1)

    # -- NumPy API ------------------------------------------------------------------
    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self._batched(x, self._softmax, fresh=True)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Pre-softmax scores ``(n, n_classes)`` as float64; charges ``n`` queries."""
        arr = self._prepare(x)
        self.budget.charge(len(arr))
        return self._batched(arr, self._run)

    def embeddings(self, x: np.ndarray) -> np.ndarray:
        """Activations of :attr:`embedding_layer`, flattened to ``(n, d)``; charges ``n``."""
        self.require(Capability.EMBEDDINGS, who="Asking for embeddings")
        assert self._embed is not None
        embed = self._embed
        arr = self._prepare(x)
        self.budget.charge(len(arr))
        parts = []
        with torch.no_grad():
            for start in range(0, len(arr), self.batch_size):
                out = embed(self.to_tensor(arr[start : start + self.batch_size]))
                parts.append(out.reshape(len(out), -1).to("cpu", torch.float64).numpy())
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0))

    # -- training -------------------------------------------------------------------
    def train_copy(self, x: np.ndarray, y: np.ndarray, *, seed: int) -> TorchTarget:
        """A freshly initialised model of the same architecture trained on ``(x, y)``.

        Uses ``trainer(x, y, seed)`` when given, else ``module_factory()`` trained by
        :func:`fit_module` with :attr:`train_options`. Initialisation is seeded inside a
        forked RNG, so global random state is untouched. No queries are charged: the
        data are the caller's own. The copy has no query budget.
        """
        self.require(Capability.TRAINING, who="train_copy")
        arr = self._prepare(x)
        labels = np.asarray(y)
        if labels.shape != (len(arr),) or labels.dtype.kind not in "iu":
            raise DataError(
                f"train_copy needs one integer label per row; got labels of shape {labels.shape} "
                f"and dtype {labels.dtype} for {len(arr)} rows."
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise DataError(
                f"train_copy labels must lie in 0..{self.n_classes - 1}; got "
                f"{labels.min()}..{labels.max()}."
            )
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            if self.trainer is not None:
                module = self.trainer(arr, labels, seed)
                if not isinstance(module, torch.nn.Module):
                    raise TargetError(
                        f"The trainer of {self.name!r} returned {type(module).__name__}; it "
                        "must return the trained torch.nn.Module."
                    )
            else:
                assert self.module_factory is not None
                module = fit_module(
                    self.module_factory(),
                    arr,
                    labels,
                    seed=seed,
                    options=self.train_options,
                    device=self.device,
                )
        return TorchTarget(
            module,
            input_spec=self.input_spec,
            classes=self.classes,
            name=f"{self.name}-copy-{seed}",
            device=self.device,
            batch_size=self.batch_size,
            embedding_layer=self.embedding_layer,
            module_factory=self.module_factory,
            trainer=self.trainer,
            train_options=self.train_options,
        )

    # -- checks and description -----------------------------------------------------
    def verify(self) -> None:
        """Run two synthetic rows (not charged) and fail if the model rejects the spec.

        Raises
        ------
        TargetError
            If the model fails on inputs of the declared shape, or its output does not
            have one column per declared class.
        """
        rows = synthetic_rows(self.input_spec)
        with torch.no_grad():
            self._run(self.to_tensor(rows))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            device=str(self.device),
            format=self.format,
            source=self.source,
            embedding_layer=self.embedding_layer,
        )
        return info


def _owned_float64(tensor: torch.Tensor, *, fresh: bool = False) -> np.ndarray:
    """``tensor`` as a C-contiguous float64 CPU array that no one else writes to.

    What ``np.concatenate`` of a single part gives, without its overhead: a copy is
    made only when the result would be non-contiguous or still share memory with a
    tensor that is not ``fresh`` (made for this call alone).
    """
    out = tensor.detach().to(_CPU, torch.float64)
    arr: np.ndarray = out.numpy()
    shared = not fresh and out.data_ptr() == tensor.data_ptr()
    if shared or not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    return arr
