"""The Keras (TensorFlow backend) MLP objective: the twin of :mod:`sweeplab.objectives.torch_mlp`.

This module imports TensorFlow and Keras at its top, so nothing imports it at package
import time: the worker loads it lazily (``framework: keras``) and keeps it for every
later trial of the process. It selects the TensorFlow backend (``KERAS_BACKEND``) unless
the process already chose one, and quiets TensorFlow's C++ log (``TF_CPP_MIN_LOG_LEVEL=2``)
unless the environment says otherwise.

The contract is the torch objective's, value for value (params, metric names, report
timing, early stopping, restored best weights, schedules, errors, returned keys); see
:meth:`KerasMLPObjective.run`. Training, in short:

- model: ``Dense -> [BatchNormalization] -> activation -> [Dropout]`` per hidden layer,
  then an output ``Dense`` producing logits (classification) or one value (regression);
- loss: ``SparseCategoricalCrossentropy(from_logits=True)``, or ``MeanSquaredError``;
- mini-batches: one ``model.fit`` call over a ``tf.data`` pipeline that, per epoch,
  gathers ``batch_size`` rows at a time of a permutation seeded with the trial's seed and
  the epoch (stateless index shuffle); no sample is dropped, and with BatchNorm a last batch of
  one row is merged into the one before it (as torch_mlp does); each epoch runs as one
  compiled step loop (``steps_per_execution`` = batches per epoch, see :class:`MLP`);
- a Keras callback ends every epoch: it evaluates the full validation set in one forward
  pass, checks for NaN/inf, tracks the best epoch and early stopping, reports to
  ``ctx.reporter`` and steps the learning-rate schedule.

Numerics follow the torch objective wherever Keras' defaults differ from torch's, so that
one spec means the same training in both frameworks (this is deliberate, and the
parity test checks it):

- initialization: kernels and biases uniform in ``±1/sqrt(fan_in)`` (torch's ``Linear``
  default) instead of Glorot-uniform kernels and zero biases;
- BatchNormalization: ``momentum=0.9`` and ``epsilon=1e-5`` (torch's ``momentum=0.1``
  and ``eps=1e-5``) instead of Keras' 0.99 / 1e-3, whose slow running statistics make
  the validation metrics of short trials lag far behind the training ones;
- optimizers (:func:`make_optimizer`): ``weight_decay`` is an L2 term added to the
  gradients of every trainable variable before the update (torch's coupled
  ``weight_decay``), not Keras' decoupled decay; rmsprop uses ``rho=0.99`` (torch's
  ``alpha``) and no momentum; adagrad starts its accumulator at 0 (torch) instead of 0.1
  and adds its epsilon after the square root; the epsilons are torch's. Each update is
  one fused TensorFlow kernel per variable. Given the same gradients, the four take
  torch's steps to float32 precision (tested);
- ``leaky_relu`` has slope 0.01 (Keras' layer default is 0.3); ``gelu`` is the exact form.

Remaining differences: the random streams (initial weights, dropout masks, shuffle order)
are the framework's own, so the two objectives give close, not identical, numbers; and
Keras' SGD keeps its momentum buffer in learning-rate units, which differs from torch's
only while a schedule changes the learning rate.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from sweeplab.core.errors import DataError
from sweeplab.objectives.base import BaseObjective, TrialContext
from sweeplab.objectives.config import MLPConfig
from sweeplab.objectives.latency import predict_latency_ms
from sweeplab.objectives.training import batch_bounds, need_dataset, nonfinite_name, trial_settings
from sweeplab.objectives.transfer import plan_trial
from sweeplab.registry.names import ACTIVATIONS

if keras.backend.backend() != "tensorflow":  # pragma: no cover - depends on the process's environment
    raise ImportError(
        f"sweeplab's keras objective needs the TensorFlow backend, but Keras was loaded with "
        f"KERAS_BACKEND={keras.backend.backend()!r}; unset KERAS_BACKEND or set it to 'tensorflow'"
    )

__all__ = [
    "MLP",
    "KerasMLPObjective",
    "TorchAdagrad",
    "TorchAdam",
    "TorchRMSprop",
    "TorchSGD",
    "build_model",
    "configure_runtime",
    "count_params",
    "make_optimizer",
    "predict",
]

log = logging.getLogger(__name__)

#: Rows per forward pass when evaluating or predicting; larger inputs are split in chunks.
EVAL_CHUNK_ROWS = 1 << 16

#: ReduceLROnPlateau's improvement threshold, absolute (same value as torch_mlp's).
PLATEAU_THRESHOLD = 1e-4

#: torch's ReduceLROnPlateau ``eps``: a reduction smaller than this is not applied.
_PLATEAU_EPS = 1e-8

#: BatchNormalization settings equal to torch's ``BatchNorm1d`` defaults (see module docstring).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

_LEAKY_SLOPE = 0.01

#: Process-wide TensorFlow runtime settings, made once (they cannot change afterwards).
_RUNTIME: dict[str, Any] = {"configured": False, "intra_op_threads": None, "inter_op_threads": None, "note": ""}


# --------------------------------------------------------------------------- runtime


def configure_runtime(cpus: float) -> dict[str, Any]:
    """Limit TensorFlow's thread pools to ``cpus`` and enable op determinism, once per process.

    Intra-op threads = ``max(1, int(cpus))`` and inter-op threads = 1; visible GPUs get
    memory growth (TensorFlow would otherwise take a whole GPU that trials with fractional
    ``gpus`` share). TensorFlow fixes
    both when its runtime initializes (at the first op of the process), so they are set
    only on the first call, and only if TensorFlow is not initialized yet; otherwise the
    current values are kept and ``note`` says why. Later calls change nothing (a process
    keeps the CPU share of its first trial; Ray gives a worker process the same share for
    every task of one study). Returns a copy of the process's settings:
    ``{"configured", "intra_op_threads", "inter_op_threads", "note"}``.
    """
    if not _RUNTIME["configured"]:
        _RUNTIME["configured"] = True
        n = max(1, int(cpus))
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            for gpu in tf.config.list_physical_devices("GPU"):  # trials may share a GPU (fractional gpus)
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:
            _RUNTIME["note"] = (
                f"TensorFlow was initialized before the first keras trial of this process; its thread pools "
                f"stay as they were ({exc})"
            )
            log.info(_RUNTIME["note"])
        tf.config.experimental.enable_op_determinism()
        _RUNTIME["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        _RUNTIME["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    return dict(_RUNTIME)


# --------------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="sweeplab")
class TorchLikeBias(keras.initializers.Initializer):
    """Uniform in ``±1/sqrt(fan_in)``: torch ``Linear``'s bias init (the fan-in is given)."""

    def __init__(self, fan_in: int) -> None:
        self.fan_in = int(fan_in)

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        bound = 1.0 / math.sqrt(self.fan_in) if self.fan_in > 0 else 0.0
        return keras.random.uniform(shape, minval=-bound, maxval=bound, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"fan_in": self.fan_in}


def _dense(units: int, fan_in: int, name: str) -> keras.layers.Dense:
    # VarianceScaling(1/3, fan_in, uniform) has limit sqrt(3 * (1/3) / fan_in) = 1/sqrt(fan_in)
    return keras.layers.Dense(
        int(units),
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform"),
        bias_initializer=TorchLikeBias(fan_in),
        name=name,
    )


def _activation(name: str, index: int) -> keras.layers.Layer:
    """The layer of activation ``name`` (one of :data:`ACTIVATIONS`); Keras' own names except leaky_relu."""
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=_LEAKY_SLOPE, name=f"leaky_relu_{index}")
    return keras.layers.Activation(name, name=f"{name}_{index}")


@keras.saving.register_keras_serializable(package="sweeplab")
class MLP(keras.Sequential):
    """A ``keras.Sequential`` whose training function runs ``steps_per_execution`` steps in one loop.

    Keras' own multi-step function guards every step with end-of-data checks (optional
    values and conditionals inside its loop); this one runs a plain ``tf.while_loop``
    (autograph off) over ``train_step`` and returns the compiled metrics after the last
    step: a smaller graph to trace and run (about 20% less CPU per trial for the
    objective's small MLPs, measured). It expects every call to find
    ``steps_per_execution`` batches (the objective's data holds exactly one execution
    per epoch); running out raises ``OutOfRangeError``, which ``fit`` treats as the end
    of the data.
    """

    def make_train_function(self, force: bool = False) -> Any:
        """Build (once) ``train_function(iterator) -> logs`` for ``fit``."""
        existing: Any = getattr(self, "train_function", None)
        if existing is not None and not force:
            return existing
        steps = int(self.steps_per_execution)
        train_step = self.train_step

        def body(i: tf.Tensor, iterator: Any) -> tuple[tf.Tensor]:
            train_step(iterator.get_next())
            return (i + 1,)

        @tf.function(autograph=False, reduce_retracing=True)
        def multi_step(iterator: Any) -> dict[str, tf.Tensor]:
            tf.while_loop(lambda i: i < steps, lambda i: body(i, iterator), (tf.constant(0),))
            return self.get_metrics_result()

        self.train_function = multi_step
        return multi_step


def build_model(
    cfg: MLPConfig,
    n_features: int,
    n_outputs: int,
    task: str,
    *,
    steps_per_execution: int = 1,
    prepare: Callable[[keras.Model], None] | None = None,
) -> keras.Model:
    """Build and compile the MLP of ``cfg`` as a ``keras.Sequential`` for ``task``.

    Per width ``u`` in ``cfg.hidden_units``: ``Dense(u)``, then ``BatchNormalization``
    (torch's momentum and epsilon) when ``cfg.batch_norm``, then the activation, then
    ``Dropout(cfg.dropout)`` when ``cfg.dropout > 0``. Last comes ``Dense(n_outputs)``
    with no activation: logits for classification, the value for regression. Weights use
    torch's default initialization, drawn from Keras' global seed generator, so call
    ``keras.utils.set_random_seed`` first for a reproducible init.

    The model is compiled (``jit_compile=False``) with ``cfg``'s optimizer (see
    :func:`make_optimizer`), ``SparseCategoricalCrossentropy(from_logits=True)`` and the
    ``accuracy`` metric for classification, or ``MeanSquaredError`` and ``mae`` for
    regression; ``steps_per_execution`` is passed to ``compile``.

    ``prepare``, when given, is called with the built model before it is compiled (to load
    weights and set ``trainable`` flags, e.g. fine-tuning; the optimizer then tracks only
    the trainable variables).

    Raises ValueError for an unknown task or activation, or non-positive sizes.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    if n_features < 1 or n_outputs < 1:
        raise ValueError(f"n_features and n_outputs must be >= 1, got n_features={n_features}, n_outputs={n_outputs}")
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {cfg.activation!r}")
    layers: list[keras.layers.Layer] = [keras.Input(shape=(int(n_features),), dtype="float32", name="features")]
    prev = int(n_features)
    for i, units in enumerate(cfg.hidden_units):
        layers.append(_dense(int(units), prev, name=f"dense_{i}"))
        if cfg.batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"bn_{i}"))
        layers.append(_activation(cfg.activation, i))
        if cfg.dropout > 0:
            layers.append(keras.layers.Dropout(float(cfg.dropout), name=f"dropout_{i}"))
        prev = int(units)
    layers.append(_dense(int(n_outputs), prev, name="logits" if task == "classification" else "value"))
    model = MLP(layers, name="mlp")
    if prepare is not None:
        prepare(model)
    model.compile(
        optimizer=make_optimizer(cfg),
        loss=_make_loss(task),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if task == "classification"
        else [keras.metrics.MeanAbsoluteError(name="mae")],
        jit_compile=False,
        steps_per_execution=max(1, int(steps_per_execution)),
    )
    # optimizer slots made now, not inside the first traced step (which makes tf.function trace it twice)
    model.optimizer.build(model.trainable_variables)
    return model


def _make_loss(task: str) -> keras.losses.Loss:
    if task == "classification":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def count_params(model: keras.Model) -> int:
    """Number of trainable parameters (kernels, biases, BatchNorm's gamma and beta).

    BatchNorm's moving mean and variance are not counted (torch keeps them as buffers),
    so this equals ``torch_mlp.count_params`` for the same config, unlike Keras'
    ``model.count_params()``.
    """
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def predict(model: keras.Model, X: np.ndarray, task: str) -> np.ndarray:
    """Predict rows ``X`` (already scaled features) with ``model`` in inference mode.

    Dropout is off and BatchNorm uses its moving statistics (``training=False``).
    Returns int64 class indices of shape ``(n,)`` for ``task == "classification"``, and
    float32 values of shape ``(n,)`` for ``"regression"``.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    x = np.ascontiguousarray(X, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"X must be a 2-D array (rows x features), got shape {tuple(x.shape)}")
    out = _forward_chunked(model, tf.constant(x)).numpy()
    if task == "classification":
        return out.argmax(axis=1).astype(np.int64)
    return out.reshape(-1).astype(np.float32)


def _forward_chunked(model: keras.Model, x: tf.Tensor) -> tf.Tensor:
    n = int(x.shape[0])
    if n <= EVAL_CHUNK_ROWS:
        return model(x, training=False)
    return tf.concat([model(x[i : i + EVAL_CHUNK_ROWS], training=False) for i in range(0, n, EVAL_CHUNK_ROWS)], 0)


# --------------------------------------------------------------------------- optimizers


class _TorchStyle:
    """Mixin for Keras optimizers: torch's coupled weight decay, and fused update kernels.

    ``l2``: ``l2 * variable`` is added to each gradient before the update (torch's
    ``weight_decay``; Keras' own ``weight_decay`` is decoupled). ``update_step`` of each
    subclass applies one fused TensorFlow kernel per variable (``ResourceApplyAdam`` and
    the like, the kernels tf.keras' optimizers used) instead of Keras' dozen element-wise
    ops: the same arithmetic as Keras' update, with a train step about a quarter cheaper
    to trace and run for the objective's small MLPs (measured). Sparse gradients take
    Keras' own path.
    """

    l2: float
    _trainable_variables: list[Any]

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> Any:
        if self.l2:
            variables = self._trainable_variables if trainable_variables is None else list(trainable_variables)
            grads = [g if g is None else g + self.l2 * v.value for g, v in zip(grads, variables, strict=True)]
        return super().apply(grads, trainable_variables)  # type: ignore[misc]

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()  # type: ignore[misc]
        config["l2"] = self.l2
        return config

    def _slot(self, slots: list[Any], variable: Any) -> Any:
        return slots[self._get_variable_index(variable)].handle  # type: ignore[attr-defined]

    def _backend_update_step(self, grads: Sequence[Any], trainable_variables: Sequence[Any], learning_rate: Any) -> Any:
        """One replica: call ``update_step`` per variable, without Keras' all-reduce of the gradients.

        Under TensorFlow's default strategy that all-reduce is an identity wrapped in
        ``tf.custom_gradient``, which registers a gradient function in TensorFlow's global
        registry at every trace and never removes it: each trial's train graph (about
        3.5 MB) would stay in memory for the life of the worker process. With several
        replicas, Keras' own path runs.
        """
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)  # type: ignore[misc]
        for grad, variable in zip(grads, trainable_variables, strict=True):
            self.update_step(grad, variable.value if isinstance(variable, keras.Variable) else variable, learning_rate)  # type: ignore[attr-defined]
        return None


@keras.saving.register_keras_serializable(package="sweeplab")
class TorchSGD(_TorchStyle, keras.optimizers.SGD):
    """SGD with momentum as ``tf.raw_ops.ResourceApplyKerasMomentum`` (Keras' formula) and coupled ``l2``."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if isinstance(gradient, tf.IndexedSlices) or self.nesterov:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        lr, grad = tf.cast(learning_rate, dtype), tf.cast(gradient, dtype)
        if self.momentum != 0:
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=variable.handle,
                accum=self._slot(self.momentums, variable),
                lr=lr,
                grad=grad,
                momentum=tf.cast(self.momentum, dtype),
                use_locking=False,
                use_nesterov=False,
            )
        else:
            tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=lr, delta=grad, use_locking=False)
        return None


@keras.saving.register_keras_serializable(package="sweeplab")
class TorchAdam(_TorchStyle, keras.optimizers.Adam):
    """Adam as ``tf.raw_ops.ResourceApplyAdam`` (Keras' formula) and coupled ``l2``."""

    def __init__(self, learning_rate: float = 0.001, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._slot(self._momentums, variable),
            v=self._slot(self._velocities, variable),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            use_nesterov=False,
        )
        return None


@keras.saving.register_keras_serializable(package="sweeplab")
class TorchRMSprop(_TorchStyle, keras.optimizers.RMSprop):
    """RMSprop as ``tf.raw_ops.ResourceApplyRMSProp`` (Keras' formula: epsilon under the root) and coupled ``l2``.

    The kernel always keeps a momentum slot; with ``momentum=0`` it holds the last step.
    """

    def __init__(self, learning_rate: float = 0.001, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.l2 = float(l2)

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        self._steps = self._momentums or self.add_optimizer_variables(var_list, "step")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if isinstance(gradient, tf.IndexedSlices) or self.centered:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyRMSProp(
            var=variable.handle,
            ms=self._slot(self._velocities, variable),
            mom=self._slot(self._steps, variable),
            lr=tf.cast(learning_rate, dtype),
            rho=tf.cast(self.rho, dtype),
            momentum=tf.cast(self.momentum, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )
        return None


@keras.saving.register_keras_serializable(package="sweeplab")
class TorchAdagrad(_TorchStyle, keras.optimizers.Adagrad):
    """Adagrad as ``tf.raw_ops.ResourceApplyAdagradV2`` and coupled ``l2``.

    The kernel adds epsilon after the square root, as torch does (Keras adds it under the
    root): ``var -= lr * g / (sqrt(accumulator) + epsilon)``.
    """

    def __init__(self, learning_rate: float = 0.001, l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyAdagradV2(
            var=variable.handle,
            accum=self._slot(self._accumulators, variable),
            lr=tf.cast(learning_rate, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            update_slots=True,
        )
        return None


def make_optimizer(cfg: MLPConfig) -> keras.optimizers.Optimizer:
    """The optimizer of ``cfg`` with torch's defaults, ``learning_rate`` and coupled L2 ``weight_decay``.

    sgd: ``momentum=cfg.momentum`` (:class:`TorchSGD`); adam: betas (0.9, 0.999), eps
    1e-8 (:class:`TorchAdam`); rmsprop: ``rho=0.99`` (torch's alpha), momentum 0, eps 1e-8
    given as ``1e-16`` because the kernel adds it under the square root
    (:class:`TorchRMSprop`); adagrad: accumulator starting at 0, eps 1e-10 after the
    root (:class:`TorchAdagrad`). ``weight_decay`` adds ``weight_decay * w`` to every
    gradient, biases and BatchNorm parameters included.
    """
    lr = float(cfg.learning_rate)
    l2 = float(cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return TorchSGD(learning_rate=lr, momentum=float(cfg.momentum), l2=l2)
    if cfg.optimizer == "adam":
        return TorchAdam(learning_rate=lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=l2)
    if cfg.optimizer == "rmsprop":
        return TorchRMSprop(learning_rate=lr, rho=0.99, momentum=0.0, epsilon=1e-16, l2=l2)
    if cfg.optimizer == "adagrad":
        return TorchAdagrad(learning_rate=lr, initial_accumulator_value=0.0, epsilon=1e-10, l2=l2)
    raise ValueError(f"optimizer must be one of ['sgd', 'adam', 'rmsprop', 'adagrad'], got {cfg.optimizer!r}")


class _Plateau:
    """torch's ``ReduceLROnPlateau(mode="min", threshold_mode="abs", cooldown=0)``, on floats."""

    def __init__(self, factor: float, patience: int, min_lr: float) -> None:
        self.factor, self.patience, self.min_lr = float(factor), int(patience), float(min_lr)
        self.best = math.inf
        self.bad_epochs = 0

    def step(self, value: float, lr: float) -> float:
        """Record this epoch's ``value``; return the learning rate for the next epoch."""
        if value < self.best - PLATEAU_THRESHOLD:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.bad_epochs = 0
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > _PLATEAU_EPS:
                return new_lr
        return lr


# --------------------------------------------------------------------------- helpers








def _arrays(X: np.ndarray, y: np.ndarray, classification: bool) -> tuple[np.ndarray, np.ndarray]:
    """Features as float32 rows and targets as int64 ``(n,)`` (classes) or float32 ``(n, 1)`` (values)."""
    x = np.ascontiguousarray(X, dtype=np.float32)
    y_np = np.asarray(y).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y_np.shape[0]:
        raise DataError(f"features must be rows x columns matching the targets, got {tuple(x.shape)} and {len(y_np)}")
    if classification:
        return x, np.ascontiguousarray(y_np, dtype=np.int64)
    return x, np.ascontiguousarray(y_np, dtype=np.float32).reshape(-1, 1)


class _Evaluator:
    """Mean loss and accuracy (or MAE) of ``model`` over all rows, in inference mode.

    One ``tf.function`` per model (traced once: any number of rows, in chunks of
    :data:`EVAL_CHUNK_ROWS`) returns per-chunk sums, added up in float64.
    """

    def __init__(self, model: keras.Model, n_features: int, classification: bool) -> None:
        self.classification = classification
        y_spec = tf.TensorSpec([None], tf.int64) if classification else tf.TensorSpec([None, 1], tf.float32)

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, n_features], tf.float32), y_spec])
        def sums(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            out = model(x, training=False)
            if classification:
                losses = keras.losses.sparse_categorical_crossentropy(y, out, from_logits=True)
                stat = tf.cast(tf.equal(tf.argmax(out, axis=1), y), tf.float64)
            else:
                diff = out - y
                losses = tf.reduce_mean(tf.square(diff), axis=-1)
                stat = tf.cast(tf.reduce_mean(tf.abs(diff), axis=-1), tf.float64)
            return tf.reduce_sum(tf.cast(losses, tf.float64)), tf.reduce_sum(stat)

        self._sums = sums

    def __call__(self, x: tf.Tensor, y: tf.Tensor) -> tuple[float, float]:
        """``(mean loss, mean accuracy or MAE)`` over the rows of ``x`` and ``y``, as Python floats."""
        n = int(x.shape[0])
        if n <= EVAL_CHUNK_ROWS:
            loss_t, stat_t = self._sums(x, y)
            return float(loss_t) / n, float(stat_t) / n
        loss_sum, stat_sum = 0.0, 0.0
        for lo in range(0, n, EVAL_CHUNK_ROWS):
            loss_t, stat_t = self._sums(x[lo : lo + EVAL_CHUNK_ROWS], y[lo : lo + EVAL_CHUNK_ROWS])
            loss_sum += float(loss_t)
            stat_sum += float(stat_t)
        return loss_sum / n, stat_sum / n




def _train_dataset(
    x: tf.Tensor, y: tf.Tensor, bounds: list[tuple[int, int]], epochs: int, seed: int
) -> tf.data.Dataset:
    """The batches of all ``epochs``: batch ``j`` of epoch ``e`` is rows ``perm_e[lo_j:hi_j]``.

    ``perm_e`` is the stateless permutation of ``0..n-1`` seeded with ``(seed, e)``
    (``tf.random.experimental.index_shuffle``, computed for a batch's positions only): the
    order depends on the seed and the epoch alone, every row is used once per epoch, and
    one iterator serves the whole ``fit``.
    """
    n = int(x.shape[0])
    n_batches = len(bounds)
    lows = tf.constant([lo for lo, _ in bounds], dtype=tf.int64)
    highs = tf.constant([hi for _, hi in bounds], dtype=tf.int64)
    seed_t = tf.constant(seed, dtype=tf.int64)

    @tf.autograph.experimental.do_not_convert
    def batch(k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        epoch, j = k // n_batches, k % n_batches
        positions = tf.range(lows[j], highs[j], dtype=tf.int64)
        rows = tf.random.experimental.index_shuffle(positions, tf.stack([seed_t, epoch]), n - 1)
        return tf.gather(x, rows), tf.gather(y, rows)

    ds = tf.data.Dataset.range(epochs * n_batches).map(batch)
    return ds.apply(tf.data.experimental.assert_cardinality(epochs * n_batches))


# --------------------------------------------------------------------------- the epoch callback


class _EpochEnd(keras.callbacks.Callback):
    """Notes each epoch's learning rate; after it: validation, NaN check, best epoch, report, schedule, early stop.

    Any exception of the epoch-end work (``TrialPruned`` from the reporter, the
    ``FloatingPointError`` of a non-finite loss) is kept in ``error`` and stops ``fit``
    after this epoch; the objective raises it once ``fit`` has returned.
    """

    def __init__(self, objective: KerasMLPObjective, trial: _Trial) -> None:
        super().__init__()
        self.objective = objective
        self.t = trial
        self.error: BaseException | None = None

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.t.epoch_lr = self.t.lr

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        try:
            self._end(epoch + 1, dict(logs or {}))
        except BaseException as exc:  # TrialPruned, FloatingPointError, anything: stop fit, re-raised after it
            self.error = exc
            self.model.stop_training = True

    def _end(self, epoch: int, logs: dict[str, Any]) -> None:
        t = self.t
        cfg = t.cfg
        loss = float(logs.get("loss", math.nan))
        stat = float(logs.get(t.acc_name, math.nan))
        t.epochs_trained = epoch
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {nonfinite_name(loss)} at epoch {epoch}; lower learning_rate "
                f"(was {cfg.learning_rate:g} with {cfg.optimizer}) or use batch_norm / a smaller batch_size"
            )
        val_loss, val_stat = t.evaluate(t.x_val, t.y_val)
        if not math.isfinite(val_loss):
            raise FloatingPointError(
                f"validation loss became {nonfinite_name(val_loss)} at epoch {epoch}; lower learning_rate "
                f"(was {cfg.learning_rate:g} with {cfg.optimizer})"
            )
        metrics = dict(zip(t.metric_names, [loss, stat, val_loss, val_stat, float(t.epoch_lr)], strict=True))
        self.objective.history.append(metrics)

        key = t.sign * metrics[t.monitor]
        if key < t.best_key:
            t.best_key, t.best_epoch = key, epoch
            t.best_weights = self.model.get_weights()
        if key < t.ref_key - t.min_delta:
            t.ref_key, t.wait = key, 0
        else:
            t.wait += 1

        t.reporter.report(epoch, dict(metrics))

        if t.plateau is not None:
            t.lr = t.plateau.step(metrics["val_loss"], t.lr)
        elif cfg.lr_schedule == "exponential":
            t.lr = t.lr * float(cfg.lr_decay_rate)
        if t.lr != t.epoch_lr:
            self.model.optimizer.learning_rate.assign(t.lr)
        if t.early_stopping and t.wait >= max(1, t.patience):
            self.model.stop_training = True


@dataclass
class _Trial:
    """The state of one training run, shared by :meth:`KerasMLPObjective.run` and its callback."""

    cfg: MLPConfig
    classification: bool
    acc_name: str
    metric_names: tuple[str, ...]
    monitor: str
    sign: float  # +1 when lower is better for the monitored metric, -1 when higher is
    min_delta: float
    patience: int
    early_stopping: bool
    reporter: Any
    evaluate: _Evaluator
    x_val: tf.Tensor
    y_val: tf.Tensor
    lr: float  # learning rate for the next epoch
    plateau: _Plateau | None
    epoch_lr: float = 0.0  # learning rate of the running epoch
    best_key: float = math.inf  # sign * monitored value of the best epoch so far
    ref_key: float = math.inf  # sign * value at the last improvement by more than min_delta
    best_epoch: int = 0
    best_weights: list[np.ndarray] | None = None
    wait: int = 0
    epochs_trained: int = 0


# --------------------------------------------------------------------------- objective


class KerasMLPObjective(BaseObjective):
    """Train an MLP with Keras (TensorFlow backend) for one trial.

    Contract of :meth:`run` (the same as ``TorchMLPObjective.run``):

    - ``ctx.params`` -> ``MLPConfig.from_params``; ``ctx.settings`` gives ``task``
      (defaults to ``ctx.dataset.task``), ``epochs`` (>= 1) and ``early_stopping``
      (``None`` or an object/mapping with ``patience``, ``min_delta`` = 0,
      ``monitor`` = ``"val_loss"``).
    - Threads and determinism: :func:`configure_runtime` on the first trial of the
      process (intra-op threads ``max(1, int(ctx.cpus))``, inter-op 1, op determinism).
      Each trial starts with ``keras.backend.clear_session(free_memory=False)`` (Keras'
      global state reset; its forced ``gc.collect()`` would cost up to 0.5 s per trial in a
      worker's heap, and Python's own collector frees a finished trial's cycles: memory
      stays flat over hundreds of trials, see also ``_TorchStyle._backend_update_step``)
      and ``keras.utils.set_random_seed(ctx.seed mod 2**32)``; the per-epoch
      shuffle is a stateless permutation seeded with that seed and the epoch. Same context on CPU ->
      identical metrics (``train_seconds`` and ``latency_ms`` aside). Device: the first GPU when
      ``ctx.gpus > 0`` and TensorFlow sees one, else the CPU.
    - After every epoch ``ctx.reporter.report(epoch, metrics)`` with a 1-based epoch and
      metrics ``loss, accuracy, val_loss, val_accuracy, lr`` (classification) or
      ``loss, mae, val_loss, val_mae, lr`` (regression). Train metrics are averaged over
      the epoch's samples as the model was while training on them; val metrics come
      from one inference-mode pass over the full validation set; ``lr`` is the learning
      rate used during that epoch. :class:`~sweeplab.objectives.base.TrialPruned` from
      the reporter stops ``fit`` after that epoch and propagates out of ``run``.
    - A non-finite training loss raises ``FloatingPointError`` naming nan/inf and the
      epoch, before that epoch is reported; a non-finite validation loss likewise.
    - Early stopping: stop when the monitored metric (min for ``*loss``/``*mae``, max for
      ``*accuracy``) has not improved by more than ``min_delta`` for ``patience`` epochs.
    - Best weights are always restored at the end, with or without early stopping: the
      epoch with the best monitored metric (``val_loss`` without early stopping; the
      earliest on ties). The returned ``val_*`` and train metrics are that epoch's
      history entry.
    - Learning-rate schedules: ``exponential`` multiplies it by ``lr_decay_rate`` after
      each epoch; ``plateau`` is torch's ``ReduceLROnPlateau`` on ``val_loss`` (factor,
      patience, ``min_lr``, absolute threshold :data:`PLATEAU_THRESHOLD`).
    - Returns those metrics plus ``test_loss`` and ``test_accuracy``/``test_mae`` (best
      weights, when the dataset has test rows), ``best_epoch`` (1-based),
      ``epochs_trained``, ``n_params``, ``train_seconds`` and ``latency_ms`` (mean per-row
      predict latency on the validation rows, see :mod:`sweeplab.objectives.latency`).
    - ``init_from`` (``ctx.dataset.init_from`` set, see :mod:`sweeplab.objectives.transfer`):
      the source's architecture and hidden-layer weights, a new output layer, the first
      ``n_frozen_layers`` hidden layers frozen (``trainable = False``),
      ``finetune_learning_rate`` as learning rate; ``n_params`` then counts the whole
      network and ``n_trainable_params`` the trained part.

    After ``run`` (also after a pruned or failed one), ``self.model`` holds the model
    (best weights once run returned), ``self.history`` one metrics dict per epoch trained
    (``history[i]`` is epoch ``i + 1``; the reported keys) and ``self.config`` the config.
    """

    def __init__(self) -> None:
        self.model: keras.Model | None = None
        self.history: list[dict[str, float]] = []
        self.config: MLPConfig | None = None

    def run(self, ctx: TrialContext) -> dict[str, float]:
        """Train and evaluate one trial; return final metrics (see the class docstring)."""
        params, transfer = plan_trial(ctx.params, ctx.dataset)  # init_from: the source's architecture
        cfg = MLPConfig.from_params(params)
        self.config = cfg
        self.model = None
        self.history = []
        ds = need_dataset(ctx.dataset, "keras")
        settings = ctx.settings

        s = trial_settings(settings, ds)
        task, epochs, classification, acc_name = s.task, s.epochs, s.classification, s.acc_name
        monitor, patience, min_delta, metric_names, sign = s.monitor, s.patience, s.min_delta, s.metric_names, s.sign
        prepare = None
        if transfer is not None:
            from sweeplab.objectives.transfer_keras import init_keras

            def prepare(model: keras.Model) -> None:  # source weights in, first n_frozen_layers frozen, new head
                init_keras(model, transfer)

        x_train, y_train = _arrays(ds.X_train, ds.y_train, classification)
        x_val, y_val = _arrays(ds.X_val, ds.y_val, classification)
        n_outputs = ds.n_outputs if classification else 1
        if classification and n_outputs < 2:
            n_outputs = int(max(np.max(y_train), np.max(y_val))) + 1
        n_train = int(x_train.shape[0])
        bounds = batch_bounds(n_train, int(cfg.batch_size), merge_singleton=cfg.batch_norm)

        configure_runtime(ctx.cpus)
        keras.backend.clear_session(free_memory=False)
        seed = int(ctx.seed) % (2**32)
        keras.utils.set_random_seed(seed)
        device = "/GPU:0" if ctx.gpus > 0 and tf.config.list_logical_devices("GPU") else "/CPU:0"

        with tf.device(device):
            model = build_model(cfg, ds.n_features, n_outputs, task, steps_per_execution=len(bounds),
                                prepare=prepare)
            self.model = model
            trial = _Trial(
                cfg=cfg,
                classification=classification,
                acc_name=acc_name,
                metric_names=metric_names,
                monitor=monitor,
                sign=sign,
                min_delta=min_delta,
                patience=patience,
                early_stopping=s.early_stopping,
                reporter=ctx.reporter,
                evaluate=_Evaluator(model, ds.n_features, classification),
                x_val=tf.constant(x_val),
                y_val=tf.constant(y_val),
                lr=float(cfg.learning_rate),
                plateau=_Plateau(cfg.lr_factor, cfg.lr_patience, cfg.min_lr) if cfg.lr_schedule == "plateau" else None,
            )
            data = _train_dataset(tf.constant(x_train), tf.constant(y_train), bounds, epochs, seed)
            callback = _EpochEnd(self, trial)
            start = time.perf_counter()
            model.fit(data, epochs=epochs, steps_per_epoch=len(bounds), verbose=0, callbacks=[callback], shuffle=False)
            train_seconds = time.perf_counter() - start
            if callback.error is not None:
                raise callback.error

            if trial.best_weights is not None:
                model.set_weights(trial.best_weights)
            best = self.history[trial.best_epoch - 1]
            result: dict[str, float] = {
                "val_loss": best["val_loss"],
                f"val_{acc_name}": best[f"val_{acc_name}"],
                "loss": best["loss"],
                acc_name: best[acc_name],
            }
            if len(ds.y_test) > 0:
                x_test, y_test = _arrays(ds.X_test, ds.y_test, classification)
                test_loss, test_stat = trial.evaluate(tf.constant(x_test), tf.constant(y_test))
                result["test_loss"] = test_loss
                result[f"test_{acc_name}"] = test_stat
        result.update(
            best_epoch=float(trial.best_epoch),
            epochs_trained=float(trial.epochs_trained),
            n_params=float(count_params(model)),
            train_seconds=float(train_seconds),
            latency_ms=predict_latency_ms(lambda: predict(model, ds.X_val, task), len(ds.y_val)),
        )
        if transfer is not None:  # n_params counts the whole network, frozen layers included
            result.update(n_params=result["n_params"] + transfer.frozen_params, n_trainable_params=result["n_params"])
        return result
