"""Inference latency of a trained model: the ``latency_ms`` metric of the torch and Keras objectives.

Measured after training, on the validation rows, with the framework's own ``predict``
(inference mode, one forward pass over all rows, prediction decoding included): one
warm-up call (lazy graph tracing, allocator), then :data:`REPEATS` timed calls. The
metric is the mean time of a call divided by the number of rows, in milliseconds:
the mean per-row predict latency at that batch size. It is wall-clock time, so it varies
between runs and machines (unlike the other metrics, which are deterministic on CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["LATENCY_METRIC", "REPEATS", "predict_latency_ms"]

LATENCY_METRIC = "latency_ms"
REPEATS = 3


def predict_latency_ms(predict: Callable[[], Any], n_rows: int, repeats: int = REPEATS) -> float:
    """Mean milliseconds per row of ``predict()`` (which predicts ``n_rows`` rows), after one warm-up call."""
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    predict()
    total = 0.0
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        predict()
        total += time.perf_counter() - start
    return 1000.0 * total / max(1, int(repeats)) / int(n_rows)
