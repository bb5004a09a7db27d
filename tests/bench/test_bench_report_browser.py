"""The benchmark report, built from hand-made results, rendered by a real headless Chromium offline.

Skipped only when ``/usr/bin/chromium`` is absent and ``SWEEPLAB_REQUIRE_SERVICES`` is unset.
"""

from __future__ import annotations

import os
import random
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sweeplab.bench.report import BENCH_SECTION_IDS, bench_sections, write_bench_report
from sweeplab.bench.results import CellResult, TrialEvent, build_result
from sweeplab.core.records import AuditedTrial, AuditResult

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=5000"]
RECORDER = """<script>
(function () {
  var errors = [];
  function record(m) { errors.push(String(m)); var el = document.getElementById('rec'); if (el) el.textContent = errors.join('\\n'); }
  window.addEventListener('error', function (e) { record('error: ' + e.message); }, true);
  var original = console.error;
  console.error = function () { record('console.error: ' + Array.prototype.join.call(arguments, ' ')); return original.apply(console, arguments); };
  document.addEventListener('DOMContentLoaded', function () {
    var el = document.createElement('pre'); el.id = 'rec'; el.setAttribute('data-armed', '1');
    el.textContent = errors.join('\\n'); document.body.appendChild(el);
  });
})();
</script>"""  # noqa: E501


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.classes: dict[str, str] = {}
        self.errors = ""
        self.armed = False
        self._rec = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.classes[a["id"]] = a.get("class") or ""
        if a.get("id") == "rec":
            self.armed, self._rec = a.get("data-armed") == "1", True

    def handle_endtag(self, tag):
        if tag == "pre":
            self._rec = False

    def handle_data(self, data):
        if self._rec:
            self.errors += data


def result_with_spread():
    rng = random.Random(0)
    cells = []
    for seed in range(3):
        for config, level in ((("tpe", "median"), 0.9), (("tpe", "none"), 0.88), (("random", "median"), 0.85),
                              (("random", "none"), 0.8)):
            events, t = [], 0.0
            for i in range(10):
                pruned = config[1] == "median" and rng.random() < 0.4
                value = None if pruned else level - rng.random() * 0.3
                dt = 0.5 if pruned else 1.5
                events.append(TrialEvent(i, "PRUNED" if pruned else "COMPLETE", value, 2 if pruned else 6, t, t + dt))
                t += dt
            c = CellResult(f"b.{config[0]}.{config[1]}.torch.s{seed}", config[0], config[1], "torch", seed, "maximize",
                           events=events, mlflow_parent_run_id=f"run{seed}")
            if config[1] == "median":
                retrained = AuditedTrial(0, {}, 2, 0.5, level, 6, "COMPLETE", None, False, True, True, 0.0)
                c.audit = AuditResult(c.study, "val_accuracy", "maximize", 6, False, 10, 7, 3, 2, seed, 2, 0, level,
                                      level - 0.1, seed % 2, 1, None, None, None, (retrained, retrained), "", "", 0.0,
                                      f"run{seed}")
            cells.append(c)
    cells[-1].status, cells[-1].error = "failed", "boom <script>alert(1)</script>"
    return build_result("b", "val_accuracy", "maximize", 10, {"samplers": ["tpe", "random"],
                        "pruners": ["median", "none"], "frameworks": ["torch"], "seeds": [0, 1, 2]}, cells, 0.8, 2)


def test_bench_report_sections_are_built_and_strings_escaped(tmp_path):
    result = result_with_spread()
    sections = bench_sections(result)
    assert [s.key for s in sections] == list(BENCH_SECTION_IDS[:5])
    assert all(s.figure is not None for s in sections), [s.note for s in sections]
    html = write_bench_report(result, tmp_path / "r.html").read_text()
    assert "<script>alert(1)</script>" not in html and "boom &lt;script&gt;" in html
    for key in BENCH_SECTION_IDS:
        assert f"id='{key}'" in html


def test_bench_report_renders_every_figure_in_chromium(tmp_path):
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("SWEEPLAB_REQUIRE_SERVICES"):
            pytest.fail(msg)
        pytest.skip(msg)
    page = write_bench_report(result_with_spread(), tmp_path / "r.html")
    html = page.read_text(encoding="utf-8")
    head = html.index("<head>") + len("<head>")
    copy = tmp_path / "instrumented.html"
    copy.write_text(html[:head] + RECORDER + html[head:], encoding="utf-8")
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", copy.as_uri()],
                          capture_output=True, text=True, timeout=90, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    assert dom.armed, proc.stderr[-2000:]
    assert dom.errors.strip() == ""
    for key in BENCH_SECTION_IDS[:5]:
        assert "js-plotly-plot" in dom.classes.get(f"{key}-plot", ""), key
