-- Run once by the postgres image, as POSTGRES_USER (sweeplab), on an empty data volume.
-- optuna:      the Optuna studies (SWEEPLAB_STORAGE)
-- mlflow:      the MLflow tracking server's backend store (runs, metrics, model registry)
-- mlflow_auth: MLflow basic-auth's user store (users and permissions), kept apart from the runs
CREATE DATABASE optuna;
CREATE DATABASE mlflow;
CREATE DATABASE mlflow_auth;
