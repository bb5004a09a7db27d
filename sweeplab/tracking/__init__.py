"""The MLflow side of sweeplab: one parent run per study, one child run per trial."""

from __future__ import annotations

from sweeplab.tracking.mlflow_tracker import StudyTracker, resolve_tracking_uri

__all__ = ["StudyTracker", "resolve_tracking_uri"]
