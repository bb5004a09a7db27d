"""sweeplab: hyperparameter search and benchmarking for neural networks.

Optuna studies whose trials run on Ray workers, with every trial logged to MLflow.
From Python (a notebook, a script): :func:`run` runs or resumes a study, :func:`load`
reads one, :func:`promote` registers its champion (see :mod:`sweeplab.api`); from a shell: the ``sweeplab`` command.

The package is split into layers, each importing only the layers before it (checked by
``tests/test_layers.py``): ``core`` (errors, checks, attribute names, records),
``registry`` (every extension point's names, options and builders), ``spaces`` (search
parameters), ``spec`` (the YAML study spec), ``objectives`` (datasets and the
Keras/PyTorch/user objectives), ``tracking`` (MLflow), ``search`` (the coordinator, the
executors and the trial loop), ``dashboards`` (plotly reports), ``study`` (running,
packaging and promoting a study), ``bench`` (benchmarks), ``api`` (the Python API:
``run``, ``load``, ``promote``) and ``cli``. This package's own module re-exports the API and
nothing else; the API imports only ``core`` at import time, so ``import sweeplab``
stays cheap (no Ray, MLflow, Optuna, torch or TensorFlow).
"""

from __future__ import annotations

__version__ = "0.1.0"

from sweeplab.api import load, promote, run  # after __version__, which every layer may read

__all__ = ["__version__", "load", "promote", "run"]
