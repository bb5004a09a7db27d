"""Analytic objectives for fast tests (imported by Ray workers through PYTHONPATH).

They follow the objective contract exactly like the real MLP objectives: report every
epoch through ``ctx.reporter`` and return metrics.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time


def bowl(ctx):
    """A noisy 2-D bowl that improves with epochs; maximum near x=0.3, y=-0.2."""
    x, y = float(ctx.params["x"]), float(ctx.params["y"])
    epochs = int(getattr(ctx.settings, "epochs", 5))
    rng = random.Random(ctx.seed)
    target = 1.0 - (x - 0.3) ** 2 - (y + 0.2) ** 2
    score = 0.0
    for epoch in range(1, epochs + 1):
        score = target * (1 - 0.5 ** epoch) + rng.uniform(-0.01, 0.01)
        ctx.reporter.report(epoch, {"score": score, "loss": 1 - score})
    return {"score": score, "loss": 1 - score}


def chatty(ctx):
    """The bowl, saying so on stdout first (what a user's print does in a trial)."""
    print(f"chatty trial {ctx.trial_number} says hello", flush=True)
    return bowl(ctx)


def napping(ctx):
    """Leaves ``started-<trial number>`` in ``options.marker_dir``, then sleeps ``options.seconds``
    without reporting (a trial busy in its own code); value from x."""
    open(os.path.join(ctx.settings.options["marker_dir"], f"started-{ctx.trial_number}"), "w").close()
    time.sleep(float(ctx.settings.options["seconds"]))
    return {"score": float(ctx.params["x"])}


def spanned(ctx):
    """Sleeps ``options.seconds`` over 2 epochs, then leaves ``span-<trial number>`` in
    ``options.marker_dir``: when the objective started and ended (epoch seconds); value from x."""
    started = time.time()
    for epoch in (1, 2):
        time.sleep(float(ctx.settings.options["seconds"]) / 2)
        ctx.reporter.report(epoch, {"score": float(ctx.params["x"]) * epoch / 2})
    with open(os.path.join(ctx.settings.options["marker_dir"], f"span-{ctx.trial_number}"), "w") as out:
        out.write(f"{started} {time.time()}")
    return {"score": float(ctx.params["x"])}


def sleepy(ctx):
    """Fixed cost: sleeps ``options.seconds`` split over the epochs; value from x."""
    seconds = float(ctx.settings.options.get("seconds", 0.1))
    epochs = int(ctx.settings.epochs)
    for epoch in range(1, epochs + 1):
        time.sleep(seconds / epochs)
        ctx.reporter.report(epoch, {"score": float(ctx.params["x"]) * epoch / epochs})
    return {"score": float(ctx.params["x"])}


def faulty(ctx):
    """Misbehaves by params["mode"]: ok, raise, nan, inf, none, string, kill, kill_once (per lineage seed)."""
    mode = ctx.params["mode"]
    ctx.reporter.report(1, {"score": 0.5})
    if mode == "raise":
        raise RuntimeError("boom: the objective failed on purpose")
    if mode == "nan":
        return {"score": math.nan}
    if mode == "inf":
        return {"score": math.inf}
    if mode == "none":
        return None
    if mode == "string":
        return "not a number"
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "kill_once":
        marker = os.path.join(ctx.settings.options["marker_dir"], f"killed-{ctx.seed}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    return {"score": 0.5 + 0.01 * float(ctx.params.get("x", 0.0))}


def works_once(ctx):
    """Trial 0 works; every later trial raises the same error (a study that worked, then broke)."""
    ctx.reporter.report(1, {"score": 0.5})
    if ctx.trial_number > 0:
        raise RuntimeError("boom after the first trial")
    return {"score": 0.5}



def jittered(trial):
    """The bowl's values (noise-free), but each epoch sleeps a random time (at most
    ``options.max_sleep`` seconds) drawn from the OS, not from the trial's seed: trials
    finish in a different order every run. Written as a user's function (``trial.report``)."""
    x, y = float(trial.params["x"]), float(trial.params["y"])
    most = float(trial.options.get("max_sleep", 0.2))
    jitter = random.SystemRandom()
    target = 1.0 - (x - 0.3) ** 2 - (y + 0.2) ** 2
    score = 0.0
    for epoch in range(1, trial.epochs + 1):
        time.sleep(jitter.uniform(0.0, most))
        score = target * (1 - 0.5 ** epoch)
        trial.report(epoch, {"score": score, "loss": 1 - score})
    return {"score": score, "loss": 1 - score}


def tradeoff(trial):
    """Two objectives to maximize that trade off through ``x`` and both grow with ``q``:
    ``a = q * x``, ``b = q * (1 - x)``, reached linearly over the epochs (so the same trials
    dominate each other at every epoch). Each epoch sleeps ``options.sleep`` seconds."""
    x, q = float(trial.params["x"]), float(trial.params["q"])
    pause = float(trial.options.get("sleep", 0.0))
    a = b = 0.0
    for epoch in range(1, trial.epochs + 1):
        time.sleep(pause)
        a, b = q * x * epoch / trial.epochs, q * (1 - x) * epoch / trial.epochs
        trial.report(epoch, {"a": a, "b": b})
    return {"a": a, "b": b}
