"""Before / after this round's optimizations, side by side in one run.

Each measurement runs in fresh processes, alternating "before" (``baseline.py``: the
speed-ups switched off through ``RunOptions.without_speedups``, the coordinator's
``storage_options`` and ``SWEEPLAB_SPEEDUPS=off`` for ``sweeplab run``: Optuna's own storage,
SQLite rollback journal, no batched writes, no start-up overlap, no worker warm-up; set by
``SWEEPLAB_BENCH_BASELINE=1``) and "after" (the code as it is), and compares medians:

- figure 1's overhead ratio and the summed trial time (one 40-trial study per process);
- figure 3a's ask + reports + tell per trial (harness, 60 TPE trials x 20 epochs);
- figure 4's start-up to the first trial (``sweeplab run`` subprocess).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import common
from baseline import BASELINE_ENV


def _script(name: str, extra: list[str], baseline: bool) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = dict(os.environ)
    env[BASELINE_ENV] = "1" if baseline else "0"
    res = subprocess.run([sys.executable, str(common.BENCH_DIR / name), "--out", str(out), *extra], env=env,
                         capture_output=True, text=True, timeout=1200)
    if res.returncode != 0 or not out.stat().st_size:
        raise RuntimeError(f"{name} {extra} failed: {res.stderr[-2000:]}")
    data = json.loads(out.read_text())
    out.unlink()
    return data


def _pair(name: str, extra: list[str], reps: int, pick: Any) -> tuple[float, float, list[float], list[float]]:
    before: list[float] = []
    after: list[float] = []
    for rep in range(reps):
        for baseline in ((True, False) if rep % 2 == 0 else (False, True)):
            value = pick(_script(name, extra, baseline))
            (before if baseline else after).append(value)
            common.log(f"{name} {'before' if baseline else 'after'}: {value:.3f}")
    return common.median(before), common.median(after), before, after


def _value(data: dict[str, Any], index: int = 0) -> float:
    return float(data["rows"][index]["value"])


def main(args: Any) -> list[dict[str, Any]]:
    reps = 1 if args.quick else 2
    rows = []
    b, a, bs, as_ = _pair("bench_overhead.py", ["--studies", "1"], reps, _value)
    rows.append(common.row("before/after: 1. overhead ratio", f"{b:.2f} -> {a:.2f}", "", "", None,
                           f"before {bs}, after {as_}"))
    b, a, bs, as_ = _pair("bench_costs.py", ["--harness", "60"], reps, _value)
    rows.append(common.row("before/after: 3a. ask+report+tell per trial (60 TPE trials)",
                           f"{b:.0f} -> {a:.0f} ms ({b / a:.1f}x)", "", "", None, f"before {bs}, after {as_}"))
    b, a, bs, as_ = _pair("bench_startup.py", ["--runs", "1"], reps, _value)
    rows.append(common.row("before/after: 4. start-up to first trial", f"{b:.1f} -> {a:.1f} s", "", "", None,
                           f"before {bs}, after {as_}"))
    return rows


if __name__ == "__main__":
    common.cli(main)
