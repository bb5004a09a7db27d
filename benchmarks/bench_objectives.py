"""Objectives used by the benchmarks (python objectives: ``objective.callable``).

Ray workers import them by module name, so ``benchmarks/`` must be on ``PYTHONPATH``
before ``ray.init`` (``benchmarks/common.py`` does that). Each objective records
``time.time()`` when it starts as the metric ``t_start`` so the harness can measure
dispatch latency and the first trial's start without touching the driver.
"""

from __future__ import annotations

import os
import time


def fixed_cost(ctx):
    """Fixed cost: sleeps ``options.seconds`` (default 0.5) split over the epochs, reports each epoch."""
    t_start = time.time()
    seconds = float(ctx.settings.options.get("seconds", 0.5))
    epochs = int(ctx.settings.epochs)
    x = float(ctx.params.get("x", 0.0))
    for epoch in range(1, epochs + 1):
        time.sleep(seconds / epochs)
        ctx.reporter.report(epoch, {"score": x * epoch / epochs, "loss": 1.0 - x * epoch / epochs})
    return {"score": x, "loss": 1.0 - x, "t_start": t_start, "t_end": time.time()}


def noop(ctx):
    """No work at all: one report, then the value (for throughput and scale)."""
    t_start = time.time()
    x = float(ctx.params.get("x", 0.0))
    epochs = int(getattr(ctx.settings, "epochs", 1))
    for epoch in range(1, epochs + 1):
        ctx.reporter.report(epoch, {"score": x})
    return {"score": x, "t_start": t_start, "t_end": time.time()}


def startup_probe(ctx):
    """Writes the wall-clock time it starts to ``options.probe_dir`` (first trial only), then sleeps a bit."""
    t_start = time.time()
    probe_dir = str(ctx.settings.options.get("probe_dir", ""))
    if probe_dir:
        path = os.path.join(probe_dir, f"trial-{ctx.trial_number}.start")
        with open(path, "w") as fh:
            fh.write(repr(t_start))
    time.sleep(float(ctx.settings.options.get("seconds", 0.05)))
    ctx.reporter.report(1, {"score": float(ctx.params.get("x", 0.0))})
    return {"score": float(ctx.params.get("x", 0.0)), "t_start": t_start}


def short_trial(ctx):
    """The short workload of ``bench_service.py``: ``systems_loop.short_train``, the same function
    the peer systems run (``options.seconds`` over the spec's epochs)."""
    import systems_loop

    seconds = float(ctx.settings.options.get("seconds", systems_loop.SHORT_SECONDS))
    score = systems_loop.short_train(ctx.params, ctx.reporter.report, seconds=seconds, epochs=int(ctx.settings.epochs))
    return {"score": score}
