"""sweeplab: hyperparameter search and benchmarking for neural networks.

Optuna studies whose trials run on Ray workers, with every trial logged to MLflow.
The package is split by job: ``spec`` (the YAML study spec), ``spaces`` (parameters),
``objectives`` (datasets and the Keras/PyTorch models), ``search`` (the study driver),
``tracking`` (MLflow) and ``dashboards`` (plotly reports).
"""

from __future__ import annotations

__version__ = "0.1.0"
