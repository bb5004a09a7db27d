"""The Keras (TensorFlow backend) objective, MLP or CNN: the twin of :mod:`sweeplab.objectives.torch_mlp`.

This module imports TensorFlow and Keras at its top, so nothing imports it at package
import time: the worker loads it lazily (``framework: keras``) and keeps it for every
later trial of the process. It selects the TensorFlow backend (``KERAS_BACKEND``) unless
the process already chose one, and quiets TensorFlow's C++ log (``TF_CPP_MIN_LOG_LEVEL=2``)
unless the environment says otherwise.

The contract (network, metrics, epoch policy, returned values) is
:class:`~sweeplab.objectives.mlp.MLPObjective`'s, the torch objective's value for value.
Training, in short:

- model: the plan (:class:`~sweeplab.spaces.architecture.MLPPlan` or
  :class:`~sweeplab.spaces.cnn.CNNPlan`) as a ``keras.Sequential`` (``Dense``,
  ``BatchNormalization``, the activation, ``Dropout``, and for a CNN's convolution
  part the layers of :mod:`sweeplab.objectives.keras_cnn`);
- loss: ``SparseCategoricalCrossentropy(from_logits=True)``, or ``MeanSquaredError``;
- mini-batches: one call of the model's train function per epoch (what ``fit`` runs) over
  one ``tf.data`` iterator that gathers ``batch_size`` rows at a time of a permutation seeded with the trial's seed and
  the epoch (stateless index shuffle); no sample is dropped, and with BatchNorm a last batch of
  one row is merged into the one before it (as torch_mlp does); each epoch runs as one
  compiled step loop (``steps_per_execution`` = batches per epoch, see :class:`MLP`);
- after every epoch the objective's shared loop (:class:`~sweeplab.objectives.mlp.MLPObjective`)
  evaluates the full validation set in one forward pass and hands the epoch to the
  :class:`~sweeplab.objectives.epochs.EpochPolicy` (checks, report, best epoch, early
  stopping, learning rate), whose decisions the next epoch applies; with cross-validation
  the fold models take their epochs in turn.

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
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from sweeplab.objectives import keras_cnn
from sweeplab.objectives.config import MLPConfig, NetworkConfig
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.latency import predict_latency_ms
from sweeplab.objectives.mlp import FoldLearner, MLPObjective, MLPTrial
from sweeplab.objectives.training import batch_bounds, prediction_rows, training_arrays
from sweeplab.spaces.architecture import LayerPlan, NetworkPlan

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
    "build_network",
    "configure_runtime",
    "count_params",
    "make_optimizer",
    "predict",
]

log = logging.getLogger(__name__)


class _OwnTracesFilter(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning about this module's own
    functions: each model (one per fold of a cross-validated trial) has its own train and
    evaluation functions, traced once each by design, which TensorFlow counts as retracing."""

    OWN = ("MLP.make_train_function.<locals>.multi_step", "_Evaluator.__init__.<locals>.sums")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and any(name in message for name in self.OWN))


tf.get_logger().addFilter(_OwnTracesFilter())

#: Rows per forward pass when evaluating or predicting; larger inputs are split in chunks.
EVAL_CHUNK_ROWS = 1 << 16

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


def _layer(layer: LayerPlan) -> keras.layers.Layer:
    if keras_cnn.translates(layer):
        return keras_cnn.layer(layer, TorchLikeBias(layer.fan_in * layer.kernel_size**2))
    if layer.kind == "dense":
        return _dense(layer.units, layer.fan_in, layer.name)
    if layer.kind == "batch_norm":
        return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=layer.name)
    if layer.kind == "dropout":
        return keras.layers.Dropout(layer.rate, name=layer.name)
    if layer.activation == "leaky_relu":  # Keras' own names for the others
        return keras.layers.LeakyReLU(negative_slope=_LEAKY_SLOPE, name=layer.name)
    return keras.layers.Activation(layer.activation, name=layer.name)


@keras.saving.register_keras_serializable(package="sweeplab")
class MLP(keras.Sequential):
    """A ``keras.Sequential`` whose training function runs ``steps_per_execution`` steps in one loop.

    Keras' own multi-step function guards every step with end-of-data checks (optional
    values and conditionals inside its loop); this one runs a plain ``tf.while_loop``
    (autograph off) over ``train_step`` and returns the compiled metrics after the last
    step: a smaller graph to trace and run (about 20% less CPU per trial for the
    objective's small MLPs, measured). It expects every call to find
    ``steps_per_execution`` batches (the objective's data holds exactly one execution
    per epoch); running out raises ``OutOfRangeError`` (``fit`` treats it as the end of
    the data).
    """

    def make_train_function(self, force: bool = False) -> Any:
        """Build (once) ``train_function(iterator) -> logs`` (for ``fit``, and for the objective's epochs)."""
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


def build_network(
    plan: NetworkPlan,
    cfg: NetworkConfig,
    *,
    steps_per_execution: int = 1,
    prepare: Callable[[keras.Model], None] | None = None,
) -> MLP:
    """The layers of ``plan`` as an :class:`MLP`, compiled with ``cfg``'s optimizer.

    Layers are named as in the plan (``dense_0``, ``bn_0``, ..., ``logits`` or ``value``);
    BatchNormalization uses torch's momentum and epsilon; weights use torch's default
    initialization, drawn from Keras' global seed generator, so call
    ``keras.utils.set_random_seed`` first for a reproducible init.

    The model is compiled (``jit_compile=False``) with ``cfg``'s optimizer (see
    :func:`make_optimizer`), ``SparseCategoricalCrossentropy(from_logits=True)`` and the
    ``accuracy`` metric for classification, or ``MeanSquaredError`` and ``mae`` for
    regression; ``steps_per_execution`` is passed to ``compile``. ``prepare``, when
    given, is called with the built model before it is compiled (to load weights and set
    ``trainable`` flags, e.g. fine-tuning; the optimizer then tracks only the trainable
    variables).
    """
    inputs = keras.Input(shape=plan.input_shape, dtype="float32", name="features")
    model = MLP([inputs, *(_layer(layer) for layer in plan.layers)], name=plan.family)
    if prepare is not None:
        prepare(model)
    classification = plan.task == "classification"
    model.compile(
        optimizer=make_optimizer(cfg),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if classification
        else keras.losses.MeanSquaredError(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if classification
        else [keras.metrics.MeanAbsoluteError(name="mae")],
        jit_compile=False,
        steps_per_execution=max(1, int(steps_per_execution)),
    )
    # optimizer slots made now, not inside the first traced step (which makes tf.function trace it twice)
    model.optimizer.build(model.trainable_variables)
    return model


def build_model(cfg: MLPConfig, n_features: int, n_outputs: int, task: str, **kwargs: Any) -> MLP:
    """:func:`build_network` of ``cfg.network(n_features, n_outputs, task)`` (keywords passed on).

    Raises ValueError for an unknown task or activation, or non-positive sizes.
    """
    return build_network(cfg.network(n_features, n_outputs, task), cfg, **kwargs)


def count_params(model: keras.Model) -> int:
    """Number of trainable parameters (kernels, biases, BatchNorm's gamma and beta).

    BatchNorm's moving mean and variance are not counted (torch keeps them as buffers),
    so this equals ``torch_mlp.count_params`` for the same config, unlike Keras'
    ``model.count_params()``.
    """
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def predict(model: keras.Model, X: np.ndarray, task: str) -> np.ndarray:
    """Predict rows ``X`` (already scaled features; images ``(n, H, W, C)`` for a CNN) with ``model`` in inference mode.

    Dropout is off and BatchNorm uses its moving statistics (``training=False``).
    Returns int64 class indices of shape ``(n,)`` for ``task == "classification"``, and
    float32 values of shape ``(n,)`` for ``"regression"``.
    """
    out = _forward_chunked(model, tf.constant(prediction_rows(X, task))).numpy()
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


def make_optimizer(cfg: NetworkConfig) -> keras.optimizers.Optimizer:
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


# --------------------------------------------------------------------------- helpers


def _arrays(X: np.ndarray, y: np.ndarray, classification: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~sweeplab.objectives.training.training_arrays`, regression targets as ``(n, 1)``."""
    x, y_np = training_arrays(X, y, classification)
    return x, y_np if classification else y_np.reshape(-1, 1)


class _Evaluator:
    """Mean loss and accuracy (or MAE) of ``model`` over all rows, in inference mode.

    One ``tf.function`` per model (traced once: any number of rows, in chunks of
    :data:`EVAL_CHUNK_ROWS`) returns per-chunk sums, added up in float64.
    """

    def __init__(self, model: keras.Model, input_shape: tuple[int, ...], classification: bool) -> None:
        self.classification = classification
        y_spec = tf.TensorSpec([None], tf.int64) if classification else tf.TensorSpec([None, 1], tf.float32)

        @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, *input_shape], tf.float32), y_spec])
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
    one iterator serves every epoch of a model (making an iterator costs tens of ms).
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


# --------------------------------------------------------------------------- one model


class _KerasLearner(FoldLearner):
    """One Keras model of a trial, trained one epoch per call of its train function.

    An epoch is what ``fit`` does per epoch without a distribution strategy (where Keras
    builds the model's metrics when the train function is first traced): ``reset_metrics``,
    then one call of ``make_train_function()``'s function (all the epoch's batches, see
    :class:`MLP`) on one iterator over every epoch's batches, made once. The objective's
    loop, not ``fit``, decides between epochs, so fold models can take their epochs in turn.
    """

    def __init__(self, t: MLPTrial, fold: Dataset, seed: int, device: str) -> None:
        cfg = t.cfg
        self.classification, self.task, self.device = t.settings.classification, t.settings.task, device
        self.acc_name = t.settings.acc_name
        prepare = None
        if t.transfer is not None:
            from sweeplab.objectives.transfer_keras import init_keras

            transfer = t.transfer

            def prepare(model: keras.Model) -> None:  # source weights in, first n_frozen_layers frozen, new head
                init_keras(model, transfer)

        x_train, y_train = _arrays(fold.X_train, fold.y_train, self.classification)
        x_val, y_val = _arrays(fold.X_val, fold.y_val, self.classification)
        self.bounds = batch_bounds(int(x_train.shape[0]), int(cfg.batch_size), merge_singleton=cfg.batch_norm)
        self.lr = float(cfg.learning_rate)
        with tf.device(device):
            self.model = build_network(t.plan, cfg, steps_per_execution=len(self.bounds), prepare=prepare)
            self.evaluate = _Evaluator(self.model, t.plan.input_shape, self.classification)
            self.x_val, self.y_val = tf.constant(x_val), tf.constant(y_val)
            data = _train_dataset(tf.constant(x_train), tf.constant(y_train), self.bounds, t.settings.epochs, seed)
            self.batches = iter(data)
            self.train_function = self.model.make_train_function()
        self.best_weights: list[np.ndarray] | None = None

    def train_epoch(self, epoch: int, lr: float) -> tuple[float, float]:
        with tf.device(self.device):
            if lr != self.lr:
                self.model.optimizer.learning_rate.assign(lr)
                self.lr = lr
            self.model.reset_metrics()
            logs = self.train_function(self.batches)
        return float(logs["loss"]), float(logs[self.acc_name])

    def validate(self) -> tuple[float, float]:
        with tf.device(self.device):
            return self.evaluate(self.x_val, self.y_val)

    def keep_best(self) -> None:
        self.best_weights = self.model.get_weights()

    def finish(self) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def test(self, dataset: Dataset) -> tuple[float, float] | None:
        if len(dataset.y_test) == 0:
            return None
        x_test, y_test = _arrays(dataset.X_test, dataset.y_test, self.classification)
        with tf.device(self.device):
            return self.evaluate(tf.constant(x_test), tf.constant(y_test))

    def latency_ms(self, X: Any) -> float:
        return predict_latency_ms(lambda: predict(self.model, X, self.task), len(X))


# --------------------------------------------------------------------------- objective


class KerasMLPObjective(MLPObjective):
    """Train a network (any model family) with Keras for one trial (contract: :class:`.MLPObjective`).

    - Threads and determinism: :func:`configure_runtime` on the first trial of the
      process (intra-op threads ``max(1, int(ctx.cpus))``, inter-op 1, op determinism).
      Each trial starts with ``keras.backend.clear_session(free_memory=False)`` (Keras'
      global state reset; its forced ``gc.collect()`` would cost up to 0.5 s per trial in a
      worker's heap, and Python's own collector frees a finished trial's cycles: memory
      stays flat over hundreds of trials, see also ``_TorchStyle._backend_update_step``)
      and ``keras.utils.set_random_seed`` with the trial's seed; the per-epoch shuffle is
      a stateless permutation seeded with that seed and the epoch. Device: the first GPU
      when ``ctx.gpus > 0`` and TensorFlow sees one, else the CPU.
    - ``TrialPruned`` from the reporter stops training after that epoch (every fold's) and
      propagates out of ``run``. Fine-tuning freezes layers with ``trainable = False``.
    """

    framework = "keras"
    _device = "/CPU:0"  # the trial's device, chosen by _begin

    def _begin(self, t: MLPTrial) -> None:
        configure_runtime(t.cpus)
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(t.seed)
        self._device = "/GPU:0" if t.gpus > 0 and tf.config.list_logical_devices("GPU") else "/CPU:0"

    def _learner(self, t: MLPTrial, fold: Dataset, seed: int) -> FoldLearner:
        return _KerasLearner(t, fold, seed, self._device)
