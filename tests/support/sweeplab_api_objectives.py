"""Functions given to ``sweeplab.run(spec, objective=...)`` by the API tests.

Defined in a module (not in a test file) so that Ray workers import them by name
(tests/support is on their PYTHONPATH); the ``__main__`` case, sent by value, is the
subprocess scripts of tests/test_api.py.
"""

from __future__ import annotations

import os


def counted(ctx):
    """Appends its trial number to ``options.log`` (one line per execution), returns a score from x."""
    with open(ctx.settings.options["log"], "a", encoding="utf-8") as f:
        f.write(f"{ctx.trial_number}\n")
    x = float(ctx.params["x"])
    ctx.reporter.report(1, {"score": x})
    return {"score": 1.0 - (x - 0.3) ** 2, "pid": float(os.getpid())}
