"""sweeplab: hyperparameter search and benchmarking for neural networks.

Optuna studies whose trials run on Ray workers, with every trial logged to MLflow.
The package is split into layers, each importing only the layers before it (checked by
``tests/test_layers.py``): ``core`` (errors, checks, attribute names, records),
``registry`` (every extension point's names, options and builders), ``spaces`` (search
parameters), ``spec`` (the YAML study spec), ``objectives`` (datasets and the
Keras/PyTorch/user objectives), ``tracking`` (MLflow), ``search`` (the coordinator, the
executors and the trial loop), ``dashboards`` (plotly reports), ``study`` (running,
packaging and promoting a study), ``bench`` (benchmarks) and ``cli``.
"""

from __future__ import annotations

__version__ = "0.1.0"
