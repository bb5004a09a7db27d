"""The study report rendered by a real headless Chromium, offline.

Skipped only when ``/usr/bin/chromium`` is absent and ``SWEEPLAB_REQUIRE_SERVICES`` is
unset; with that variable set a missing browser fails the test. Install it with
``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pytest

from sweeplab.dashboards import study_sections, write_study_report

optuna.logging.set_verbosity(optuna.logging.ERROR)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
]
ERRORS_ID = "sweeplab-test-errors"

# Put first in <head> of the test copy only: records every error and console.error
# into a <pre> that --dump-dom shows. data-armed proves the recorder ran at all.
RECORDER = f"""<script>
(function () {{
  var errors = [];
  function show() {{
    var el = document.getElementById('{ERRORS_ID}');
    if (el) {{ el.textContent = errors.join('\\n'); }}
  }}
  function record(msg) {{ errors.push(String(msg)); show(); }}
  window.addEventListener('error', function (e) {{ record('error: ' + e.message); }}, true);
  window.addEventListener('unhandledrejection', function (e) {{ record('rejection: ' + e.reason); }});
  var original = console.error;
  console.error = function () {{
    record('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  }};
  document.addEventListener('DOMContentLoaded', function () {{
    var el = document.createElement('pre');
    el.id = '{ERRORS_ID}';
    el.setAttribute('data-armed', '1');
    document.body.appendChild(el);
    show();
  }});
}})();
</script>"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver"
        if os.environ.get("SWEEPLAB_REQUIRE_SERVICES"):
            pytest.fail(msg)
        pytest.skip(msg)
    return CHROMIUM


def _run_chromium(binary: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [str(binary), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90,
                          env={**os.environ, "HOME": str(tmp)})


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    units = trial.suggest_int("units", 8, 256, log=True)
    act = trial.suggest_categorical("act", ["relu", "tanh"])
    trial.set_user_attr("sweeplab.node", f"node-{trial.number % 2}")
    floor = (x - 0.5) ** 2 + abs(math.log2(units) - 6) / 4 + (0.3 if act == "tanh" else 0.0)
    for epoch in range(5):
        trial.report(floor + 2.0 / (epoch + 1), epoch)
        if trial.number == 6 and epoch == 2:
            raise RuntimeError("diverged")
        if trial.should_prune():
            raise optuna.TrialPruned()
    return floor + 0.4


@pytest.fixture(scope="module")
def studies() -> dict[str, optuna.Study]:
    single = optuna.create_study(study_name="browser <single>", sampler=optuna.samplers.TPESampler(seed=3),
                                 pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2))
    single.enqueue_trial({"x": 0.4, "units": 48, "act": "relu"})
    single.optimize(_objective, n_trials=16, catch=(RuntimeError,))
    assert {"COMPLETE", "PRUNED", "FAIL"} <= {t.state.name for t in single.trials}

    multi = optuna.create_study(study_name="browser-multi", directions=["minimize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    multi.optimize(lambda t: (t.suggest_float("a", 0, 1) ** 2, 1 - (t.suggest_float("b", 0, 1) - 1) ** 2),
                   n_trials=8)
    return {"single": single, "multi": multi}


class _Dom(HTMLParser):
    """Collects id -> class and the text of the error recorder from a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: dict[str, str] = {}
        self.armed = False
        self.errors = ""
        self._in_errors = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.classes[a["id"] or ""] = a.get("class") or ""
        if a.get("id") == ERRORS_ID:
            self.armed = a.get("data-armed") == "1"
            self._in_errors = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_errors = False

    def handle_data(self, data: str) -> None:
        if self._in_errors:
            self.errors += data


def _test_copy(page: Path, tmp: Path) -> Path:
    html = page.read_text(encoding="utf-8")
    head = html.index("<head>") + len("<head>")
    copy = tmp / f"instrumented-{page.name}"
    copy.write_text(html[:head] + RECORDER + html[head:], encoding="utf-8")
    return copy


def _render(binary: Path, page: Path, tmp: Path, screenshot: Path | None = None) -> _Dom:
    """Load ``page`` in headless Chromium (5 s of virtual time), return its final DOM;
    with ``screenshot`` also save a 1400x4000 PNG of it, in the same run."""
    args = ["--virtual-time-budget=5000"]
    if screenshot is not None:
        args += [f"--screenshot={screenshot}", "--window-size=1400,4000"]
    proc = _run_chromium(binary, tmp, *args, "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-3000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    assert dom.armed, "the error recorder did not run: " + proc.stdout[:500] + proc.stderr[-2000:]
    return dom


def _check_figures(dom: _Dom, study: optuna.Study, min_figures: int) -> None:
    assert dom.errors.strip() == ""
    drawn = [s for s in study_sections(study) if s.figure is not None]
    assert len(drawn) >= min_figures
    for section in drawn:
        assert section.key in dom.classes, section.key  # the <h2 id=...>
        assert "js-plotly-plot" in dom.classes.get(f"{section.key}-plot", ""), section.key


def test_single_objective_report_renders_every_figure_and_screenshot(chromium: Path, studies,
                                                                     tmp_path: Path) -> None:
    study = studies["single"]
    page = write_study_report(study.study_name, study=study, path=tmp_path / "report.html")
    shot = tmp_path / "report.png"
    dom = _render(chromium, _test_copy(page, tmp_path), tmp_path, screenshot=shot)
    _check_figures(dom, study, min_figures=7)
    assert shot.exists()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1400x4000 page compresses to a few KB; seven drawn figures are far larger.
    assert len(data) > 150_000, len(data)
    keep = os.environ.get("SWEEPLAB_KEEP_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(data)


def test_multi_objective_report_renders_pareto_front(chromium: Path, studies, tmp_path: Path) -> None:
    study = studies["multi"]
    page = write_study_report(study.study_name, study=study, path=tmp_path / "report.html")
    dom = _render(chromium, _test_copy(page, tmp_path), tmp_path)
    _check_figures(dom, study, min_figures=6)
    assert "js-plotly-plot" in dom.classes["fig-pareto-front-plot"]


def test_error_recorder_catches_errors(chromium: Path, tmp_path: Path) -> None:
    """The harness itself: a page that throws must show up in the recorder."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head></head><body><script>console.error('bad thing');"
                    "undefinedFunction();</script></body></html>", encoding="utf-8")
    dom = _render(chromium, _test_copy(page, tmp_path), tmp_path)
    assert "console.error: bad thing" in dom.errors
    assert re.search(r"error: .*undefinedFunction", dom.errors)
