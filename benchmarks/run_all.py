"""Run every benchmark and print one table: figure, measured value, target, met?

    make bench                      # or: .venv/bin/python benchmarks/run_all.py
    python benchmarks/run_all.py --quick          # a smoke run (fewer repetitions)
    python benchmarks/run_all.py --only overhead,costs

Each benchmark runs in its own process (its own local Ray), one after another, so their
timings do not disturb each other; figures inside a benchmark are ratios measured side by
side. Writes ``benchmarks/results/latest.json`` and ``latest.md``. Needs the comparison's
extras for figure 2 (``pip install -c constraints.txt "ray[tune]" optuna-integration``;
``make bench`` installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from baseline import BASELINE_ENV

BENCHMARKS = [
    ("overhead", "bench_overhead.py"),
    ("systems", "bench_systems.py"),
    ("costs", "bench_costs.py"),
    ("startup", "bench_startup.py"),
    ("search", "bench_search.py"),
    ("scale", "bench_scale.py"),
    ("before_after", "bench_before_after.py"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--only", help="comma-separated names: " + ",".join(n for n, _ in BENCHMARKS))
    parser.add_argument("--output-dir", default=str(common.RESULTS_DIR))
    args = parser.parse_args()
    common.setup_env()
    os.environ[BASELINE_ENV] = "0"
    common.store_templates()  # created once, shared by every benchmark through the environment
    chosen = set(args.only.split(",")) if args.only else {n for n, _ in BENCHMARKS}
    rows: list[dict] = []
    timings: dict[str, float] = {}
    t_all = time.time()
    load_before = os.getloadavg()[0]
    for name, script in BENCHMARKS:
        if name not in chosen:
            continue
        out = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".json")[1])
        cmd = [sys.executable, str(common.BENCH_DIR / script), "--out", str(out)]
        if args.quick:
            cmd.append("--quick")
        common.log(f"running {script}")
        t = time.time()
        res = subprocess.run(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        timings[name] = round(time.time() - t, 1)
        if res.returncode != 0 or not out.exists() or not out.stat().st_size:
            rows.append(common.row(f"{name}: benchmark failed", f"exit {res.returncode}", "", "", False,
                                   (res.stdout or "")[-500:]))
        else:
            rows.extend(json.loads(out.read_text())["rows"])
        out.unlink(missing_ok=True)
        common.log(f"{script}: {timings[name]:.0f} s")
    elapsed = time.time() - t_all
    env = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": round(load_before, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "quick": args.quick,
        "elapsed_s": round(elapsed, 1),
        "per_benchmark_s": timings,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    outdir = Path(args.output_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "latest.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2, default=str) + "\n")
    md = [f"`make bench` on {env['machine']}, {env['date']}, {elapsed / 60:.1f} min "
          f"(load average {env['load_average_at_start']} -> {env['load_average_at_end']})", "",
          common.table(rows, markdown=True), "", "Details:", ""]
    md += [f"- **{r['figure']}**: {r['details']}" for r in rows if r.get("details")]
    (outdir / "latest.md").write_text("\n".join(md) + "\n")
    print()
    print(common.table(rows))
    print(f"\n{elapsed / 60:.1f} min; details in {outdir / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
