"""Model code of sweeplab's MLflow models ("models from code": MLflow copies this file into
the model folder and runs it at load time, so the logged model holds no pickle).

It only names the wrapper class; the weights and the preprocessing are the model's
artifacts (see :mod:`sweeplab.tracking.models`).
"""

from __future__ import annotations

from mlflow.models import set_model

from sweeplab.tracking.models import MLPModel

set_model(MLPModel())
