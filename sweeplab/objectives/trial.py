"""The trial object: what a user's training function (and every built-in objective) gets.

A user's function is ``def train(trial) -> float | dict``. It reads its hyperparameters
from ``trial.params``, trains, calls ``trial.report(epoch, value)`` once per epoch (which
lets the study's pruner stop it), and returns the study's metric (a number) or a mapping
of metric names to numbers that includes it. Everything documented on :class:`Trial` is
public API; the rest (``reporter``, ``settings``, ``extras``, ``trial_number``) is what
the built-in objectives read.

The trial runs on a Ray worker that may be on another machine than the study's driver:
it never touches Optuna's storage or MLflow itself. Reports, checkpoints and pruning
decisions go through the study's coordinator; models and files logged with
:meth:`Trial.log_model` / :meth:`Trial.log_artifact` travel back with the trial's outcome
and the driver logs them into the trial's MLflow child run.
"""

from __future__ import annotations

import importlib.util
import operator
import os
import pickle
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sweeplab.objectives.devices import trial_device

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec

__all__ = ["NullReporter", "Reporter", "Trial", "TrialHooks", "TrialPruned", "seed_libraries"]

MODEL_ARTIFACT = "model"
"""Artifact path of the model :meth:`Trial.log_model` logs into the trial's child run."""


class TrialPruned(BaseException):
    """The study's pruner stopped this trial: raised by :meth:`Trial.report`.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that an ``except Exception``
    around a training step does not swallow it. Let it propagate: the worker turns it into
    a PRUNED trial. A function may also raise it itself (``raise TrialPruned()``) to stop
    at the last reported epoch; raising Optuna's ``optuna.TrialPruned`` works the same way.
    """

    def __init__(self, epoch: int | None = None) -> None:
        self.epoch = epoch
        super().__init__("pruned" if epoch is None else f"pruned at epoch {epoch}")


class Reporter(Protocol):
    """Receives per-epoch metrics of one trial (the transport under :meth:`Trial.report`)."""

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record metrics of ``epoch``. Raises :class:`TrialPruned` to stop."""


class NullReporter:
    """A reporter that records metrics and never prunes (for direct calls and tests)."""

    def __init__(self) -> None:
        self.history: list[tuple[int, dict[str, float]]] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.history.append((epoch, dict(metrics)))


@dataclass(frozen=True)
class TrialHooks:
    """What connects a trial to its study (set by the worker that runs it).

    ``save_checkpoint(data)`` stores the lineage's one checkpoint (pickled bytes) and
    ``load_checkpoint()`` returns it (None when there is none); ``save_model(model,
    input_example, dataset)`` saves a model with MLflow in a temporary folder and returns
    its files by relative path. None (a trial outside a study): checkpoints are only
    checked to pickle, :meth:`Trial.restore` returns None and :meth:`Trial.log_model` raises.
    """

    save_checkpoint: Callable[[bytes], None] | None = None
    load_checkpoint: Callable[[], bytes | None] | None = None
    save_model: Callable[[Any, Any, Any], dict[str, bytes]] | None = None


class Trial:
    """One trial of a study, as a training function sees it.

    Attributes (set by sweeplab; read them, do not change them):

    - ``params``: the sampled hyperparameters, by the names of the spec's ``space``.
    - ``number``: the trial's number in the Optuna study (a retry has its own number).
    - ``attempt``: 0 for a trial's first attempt, 1, 2... for the retries of a trial whose
      worker died (same params, same seed; see :meth:`restore`).
    - ``seed``: the trial's seed (from the study's ``seed`` and the lineage's first
      number, so a retry gets its original's). Before a user function is called,
      Python's ``random`` and numpy's global generator are seeded with it, and so are
      torch (``torch.manual_seed``) and Keras/TensorFlow (``keras.utils.set_random_seed``
      or ``tf.random.set_seed``) **when they are already imported** by then (imported at
      the top of the function's module): a worker that does not use them never imports
      them. A function that imports torch inside itself seeds it itself.
    - ``device``: ``"cuda:N"`` when the trial has a GPU share (``resources.gpu > 0``) and
      torch sees CUDA, else ``"cpu"``: N is the index of the trial's GPU among the visible
      ones (Ray makes the trial's GPUs the only visible ones, so ``"cuda:0"`` there; see
      :func:`~sweeplab.objectives.devices.trial_device`). Keras places its work itself.
    - ``cpus``: the trial's CPU share (``resources.cpu``). Before a user function is
      called, torch's threads (``torch.set_num_threads``, when torch is imported), the
      BLAS/OpenMP thread pools already loaded (threadpoolctl) and ``OMP_NUM_THREADS`` /
      ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` (for processes it starts) are set to
      ``max(1, int(cpus))``, so parallel trials do not fight over cores.
    - ``gpus``: the trial's GPU share (``resources.gpu``, fractions allowed).
    - ``dataset``: the spec's ``objective.dataset`` loaded, split and scaled once per
      study (:class:`~sweeplab.objectives.dataset.Dataset`: ``X_train``, ``y_train``,
      ``X_val``, ``y_val``, ``X_test``, ``y_test`` as numpy arrays, float32 features;
      read-only, shared by the trials of a machine: ``torch.tensor(a)`` copies), or None
      when the spec names no dataset. With cross-validation (``objective.validation:
      {kfold: K}``) ``X_train`` / ``y_train`` hold every row left after the test split and
      ``X_val`` / ``y_val`` are empty: train on :meth:`folds` instead.
    - ``options``: the spec's ``objective.options`` (a copy: plain data, free to change).
    - ``epochs``: the spec's ``objective.epochs`` (what a training loop may run up to;
      Hyperband's ``max_resource`` defaults to it).
    - ``metric``: the study's metric (the first one of a multi-objective study): what a
      number passed to :meth:`report` or returned by the function means.
    - ``metric_names``: every metric of the study.

    Methods: :meth:`folds`, :meth:`report`, :meth:`should_prune`, :meth:`checkpoint`, :meth:`restore`,
    :meth:`log_model`, :meth:`log_artifact`.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        dataset: Dataset | None,
        seed: int,
        reporter: Reporter,
        settings: ObjectiveSpec | Any,
        cpus: float = 1.0,
        gpus: float = 0.0,
        trial_number: int = 0,
        extras: Mapping[str, Any] | None = None,
        *,
        attempt: int = 0,
        metric_names: tuple[str, ...] = (),
        prunable: bool = False,
        hooks: TrialHooks | None = None,
    ) -> None:
        self.params: Mapping[str, Any] = params
        self.dataset: Dataset | None = dataset
        self.seed = int(seed)
        self.reporter: Reporter = reporter
        self.settings = settings
        self.cpus = float(cpus)
        self.gpus = float(gpus)
        self.trial_number = int(trial_number)
        self.extras: Mapping[str, Any] = dict(extras or {})
        self.attempt = int(attempt)
        metric = self.extras.get("metric")
        self.metric_names: tuple[str, ...] = tuple(metric_names) or ((str(metric),) if metric else ("value",))
        self.prunable = bool(prunable)
        self.hooks = hooks or TrialHooks()
        self.options: dict[str, Any] = _plain_copy(getattr(settings, "options", None) or {})
        self.epochs = int(getattr(settings, "epochs", 0) or 0)
        self._device: str | None = None
        self._last_epoch: int | None = None
        self._decision = False
        self._pruned_raised_at: int | None = None
        self._reported: set[str] = set()
        self._metric_warned = False
        self._warnings: list[str] = []
        self._artifacts: dict[str, bytes] = {}
        self._restored: tuple[bool, Any] = (False, None)

    # ------------------------------------------------------------ plain attributes
    @property
    def number(self) -> int:
        """The trial's number in the Optuna study."""
        return self.trial_number

    @property
    def metric(self) -> str:
        """The study's metric (the first of a multi-objective study)."""
        return self.metric_names[0]

    @property
    def device(self) -> str:
        """``"cuda:N"`` with a GPU share and CUDA visible to torch, else ``"cpu"`` (see the class)."""
        if self._device is None:
            self._device = trial_device(self.gpus)
        return self._device

    # ------------------------------------------------------------ data
    def folds(self) -> list[Dataset]:
        """The validation folds of :attr:`dataset`, each a Dataset with its own ``X_train`` /
        ``y_train`` (training rows), ``X_val`` / ``y_val`` (validation rows) and the study's
        ``X_test`` / ``y_test`` (never in any fold).

        With ``objective.validation: {kfold: K, repeats: R}`` (or ``auto`` on a small table)
        these are the study's ``K * R`` folds, the same for every trial (seeded by the study's
        seed; stratified by class for classification); with a holdout split, one fold:
        :attr:`dataset` itself. So one loop serves both::

            scores = []
            for fold in trial.folds():
                model = fit(fold.X_train, fold.y_train)
                scores.append(score(model, fold.X_val, fold.y_val))
            return sum(scores) / len(scores)

        To prune mid-training, train the folds side by side and report the mean over folds
        each epoch (:meth:`report` works as without folds). ValueError when the spec names
        no dataset.
        """
        if self.dataset is None:
            raise ValueError("trial.folds(): the spec names no objective.dataset, so there are no folds; "
                             "set objective.dataset (and objective.validation: {kfold: 5}) in the spec")
        return self.dataset.fold_datasets()

    # ------------------------------------------------------------ reporting
    def report(self, epoch: int, value: float | Mapping[str, float], *, raise_pruned: bool = True) -> None:
        """Record epoch ``epoch``'s metrics; raise :class:`TrialPruned` when the pruner stops the trial.

        ``value``: a number (the study's :attr:`metric`) or a mapping of metric names to
        numbers, which should hold the study's metric: the pruner decides on it, and every
        metric is logged per epoch in the trial's MLflow run. A mapping without it is
        recorded, but the pruner cannot stop this trial (said once on the study's stderr).
        Epochs are integers >= 0 that increase from one report to the next (a ValueError
        names both epochs otherwise); a retried attempt that :meth:`restore` d epoch 3
        reports from epoch 4 on.

        With ``raise_pruned=False`` the decision is only recorded: ask
        :meth:`should_prune`, clean up, then ``raise TrialPruned()`` (or return, which
        ends the trial COMPLETE with what it returns).
        """
        step = _epoch(epoch)
        if self._last_epoch is not None and step <= self._last_epoch:
            raise ValueError(
                f"trial.report: epoch {step} came after epoch {self._last_epoch}; epochs must increase from one "
                "report to the next (report each epoch once, in order)"
            )
        metrics = self._metrics(value)
        self._last_epoch = step
        self._reported.update(metrics)
        if self.prunable and self.metric not in metrics and not self._metric_warned:
            self._metric_warned = True
            self._warnings.append(
                f"pruning is off for this trial: trial.report did not include the study metric {self.metric!r} "
                f"(it reported {', '.join(sorted(metrics)) or 'nothing'}); report it each epoch, e.g. "
                f"trial.report(epoch, {{{self.metric!r}: value, ...}})"
            )
        try:
            self.reporter.report(step, metrics)
        except TrialPruned:
            self._decision = True
            if not raise_pruned:
                return
            self._pruned_raised_at = step
            raise
        self._decision = False

    def should_prune(self) -> bool:
        """The pruner's decision at the last :meth:`report` (False before any); never raises."""
        return self._decision

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self, state: Any) -> None:
        """Keep ``state`` as this trial's checkpoint, replacing the previous one.

        ``state`` is any picklable object, typically ``{"epoch": e, "model":
        model.state_dict(), "optimizer": optimizer.state_dict()}`` (tensors on the CPU, or
        load them with ``map_location``). When the trial's worker dies (it ran out of
        memory, its node was lost, the study's driver was killed and the study resumed),
        the trial is retried with the same params and seed and :meth:`restore` gives this
        state back, so training goes on from that epoch. The bytes go to the study's
        coordinator, which keeps the last one per trial lineage in a private folder next
        to the study's local state (``.sweeplab/checkpoints`` beside a SQLite study,
        else in the driver's working directory) and deletes it when the lineage finishes.
        The call returns once the checkpoint is stored.
        """
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)  # a state that cannot be pickled fails here
        if self.hooks.save_checkpoint is not None:
            self.hooks.save_checkpoint(data)

    def restore(self) -> Any:
        """The last :meth:`checkpoint` of this trial's lineage, or None (a first attempt,
        or a retry whose earlier attempts saved none)."""
        done, state = self._restored
        if done:
            return state
        if self.hooks.load_checkpoint is None:
            data = None
        else:
            data = self.hooks.load_checkpoint()
        state = None if data is None else pickle.loads(data)
        self._restored = (True, state)
        return state

    # ------------------------------------------------------------ models and files
    def log_model(self, model: Any, input_example: Any = None) -> None:
        """Save ``model`` (a ``torch.nn.Module`` or a Keras model) with MLflow's own flavour
        (``mlflow.pytorch``, ``mlflow.keras``) as artifact ``model`` of the trial's MLflow
        child run, with a signature inferred from ``input_example`` (default: the first 5
        rows of ``trial.dataset.X_train``, when there is a dataset).

        ``mlflow.pyfunc.load_model("runs:/<child run id>/model")`` then loads it and predicts.
        A torch model is saved in the ``pt2`` format (``torch.export``, no pickle), which
        needs an input example; it is saved from a CPU copy in eval mode, the model
        itself is left as it is. The run is tagged ``sweeplab.logged_model``. The model is
        saved now (a later call replaces it) and uploaded when the trial ends, whatever
        its state.
        """
        if self.hooks.save_model is None:
            raise RuntimeError("trial.log_model only works inside a sweeplab study (no tracking for this trial)")
        files = self.hooks.save_model(model, input_example, self.dataset)
        prefix = f"{MODEL_ARTIFACT}/"
        self._artifacts = {k: v for k, v in self._artifacts.items() if not k.startswith(prefix)}
        self._artifacts.update({prefix + name: data for name, data in files.items()})

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> None:
        """Upload the file (or folder) at ``path`` into the trial's MLflow child run, as
        ``name`` (default: its base name) when the trial ends. The content is read now."""
        source = Path(path)
        target = name or source.name
        if not target or Path(target).is_absolute() or ".." in Path(target).parts:
            raise ValueError(f"trial.log_artifact: name must be a relative path inside the run, got {target!r}")
        if source.is_dir():
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                self._artifacts[f"{target}/{file.relative_to(source).as_posix()}"] = file.read_bytes()
        elif source.is_file():
            self._artifacts[target] = source.read_bytes()
        else:
            raise FileNotFoundError(f"trial.log_artifact: no file or folder at {str(source)!r}")

    # ------------------------------------------------------------ for the worker
    @property
    def artifacts(self) -> dict[str, bytes]:
        """Files logged so far, by artifact path (sent to the driver with the outcome)."""
        return dict(self._artifacts)

    @property
    def last_epoch(self) -> int | None:
        """The last reported epoch (None before any report)."""
        return self._last_epoch

    @property
    def pruned_and_swallowed(self) -> int | None:
        """The epoch whose :class:`TrialPruned` the function caught instead of letting it out."""
        return self._pruned_raised_at

    def warnings(self, ended: bool = True) -> list[str]:
        """Mistakes worth telling the user about, found while the trial ran, and with ``ended``
        (the function returned) those only its end shows: a study metric never reported."""
        out = list(self._warnings)
        if ended and self.prunable and self.metric not in self._reported and not self._metric_warned:
            out.append(
                f"the study has a pruner, but this trial never reported the study metric {self.metric!r} "
                "with trial.report(epoch, value), so the pruner cannot stop it; report it each epoch"
            )
        return out

    def _metrics(self, value: Any) -> dict[str, float]:
        if isinstance(value, Mapping):
            out: dict[str, float] = {}
            for key, item in value.items():
                out[str(key)] = _number(item, f"trial.report: metric {key!r}")
            return out
        return {self.metric: _number(value, "trial.report: the value")}

    def prepare(self) -> None:
        """Seed the libraries and limit threads as documented on the class (before a user function)."""
        seed_libraries(self.seed)
        limit_threads(self.cpus)


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_copy(v) for v in value]
    return value


def _epoch(epoch: Any) -> int:
    if isinstance(epoch, bool):
        raise TypeError(f"trial.report: epoch must be an integer >= 0, got {epoch!r}")
    try:
        step = operator.index(epoch)
    except TypeError:
        raise TypeError(f"trial.report: epoch must be an integer >= 0, got {type(epoch).__name__} {epoch!r}") from None
    if step < 0:
        raise ValueError(f"trial.report: epoch must be an integer >= 0, got {step}")
    return int(step)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}: {value!r:.80}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a number, got {type(value).__name__}: {value!r:.80} ({exc})") from None


def seed_libraries(seed: int) -> None:
    """Seed ``random``, numpy, and torch / Keras / TensorFlow where already imported (see :class:`Trial`)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "manual_seed"):
        torch.manual_seed(seed)
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(getattr(keras, "utils", None), "set_random_seed"):
        keras.utils.set_random_seed(seed % 2**32)
    else:
        tf = sys.modules.get("tensorflow")
        if tf is not None and hasattr(getattr(tf, "random", None), "set_seed"):
            tf.random.set_seed(seed)


_THREADS_APPLIED: dict[str, int] = {}
"""What :func:`limit_threads` last applied in this process, per library (it costs time)."""


def limit_threads(cpus: float) -> None:
    """Limit this process's compute threads to ``max(1, int(cpus))`` (see :class:`Trial`)."""
    n = max(1, int(cpus))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads") and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if _THREADS_APPLIED.get("blas") != n and importlib.util.find_spec("threadpoolctl") is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
        _THREADS_APPLIED["blas"] = n
    tf = sys.modules.get("tensorflow")
    if tf is not None and _THREADS_APPLIED.get("tf") is None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except (RuntimeError, AttributeError):  # TensorFlow already started: its pools are fixed
            pass
        _THREADS_APPLIED["tf"] = n
