"""A cold ``sweeplab run`` at an earlier commit, at the working tree, and plain Optuna, side by side.

    .venv/bin/python benchmarks/bench_revisions.py REV [--workload short] [--reps 4]

Each repetition runs the three in turn (the order alternates), each as its own command in a
fresh directory: ``sweeplab run spec.yaml --json --no-progress --no-model`` with the
package imported from a git worktree of ``REV`` ("before") or from this checkout
("after"), and ``bench_service.py``'s plain Optuna (``study.optimize(n_jobs=2)`` +
MLflowCallback) on the same workload and seed. Both sweeplab runs use this checkout's
virtual environment, so only the package's code differs. Prints each run (wall time,
and the study's own ``elapsed_s`` and start-up) and the medians; writes nothing else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_service
import common

ROOT = common.BENCH_DIR.parent


def _cold(tree: Path, workload: str, seed: int) -> dict[str, float]:
    """``bench_service.py``'s cold run, with the package imported from ``tree``."""
    work = Path(tempfile.mkdtemp(prefix="sweeplab-rev-"))
    try:
        (work / "spec.yaml").write_text(bench_service.SPECS[workload].replace("seed: 42", f"seed: {seed}"))
        env = bench_service._env({"PYTHONPATH": os.pathsep.join([str(tree), str(common.BENCH_DIR)])})
        _, wall, summary = bench_service._run([sys.executable, "-m", "sweeplab.cli", "run", "spec.yaml", "--json",
                                               "--no-progress", "--no-model"], work, env)
        return {"wall": wall, "elapsed": summary["elapsed_s"], "startup": summary["startup_s"]["total"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the earlier commit (any git revision)")
    parser.add_argument("--workload", default="short", choices=bench_service.WORKLOADS)
    parser.add_argument("--reps", type=int, default=4)
    args = parser.parse_args(argv)
    before = Path(tempfile.mkdtemp(prefix="sweeplab-rev-tree-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.rev], check=True)
    try:
        systems = ["before", "after", "optuna"]
        walls: dict[str, list[float]] = {s: [] for s in systems}
        for rep in range(args.reps):
            for system in systems if rep % 2 == 0 else systems[::-1]:
                seed = 42 + rep
                if system == "optuna":
                    result = bench_service.run_system("optuna", args.workload, seed, None)
                    print(f"{system:7s} {result['wall']:6.2f} s", flush=True)
                else:
                    result = _cold(before if system == "before" else ROOT, args.workload, seed)
                    print(f"{system:7s} {result['wall']:6.2f} s  (elapsed_s {result['elapsed']:.2f}, "
                          f"start-up {result['startup']:.2f})", flush=True)
                walls[system].append(result["wall"])
        medians = {s: common.median(walls[s]) for s in systems}
        print(f"medians ({args.workload}, {args.reps} reps, load {common.load_text()}): "
              + ", ".join(f"{s} {medians[s]:.2f} s" for s in systems)
              + f"; after / plain Optuna {medians['after'] / medians['optuna']:.2f}x, "
              f"before / plain Optuna {medians['before'] / medians['optuna']:.2f}x")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
        shutil.rmtree(before.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
