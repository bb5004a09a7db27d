#!/bin/sh
# sweeplab-mlflow-auth COMMAND [ARG...]
#
# Entrypoint of the compose `mlflow` service (in the image as /usr/local/bin/sweeplab-mlflow-auth):
# renders MLflow's basic-auth configuration at start, then execs COMMAND (`mlflow server ...
# --app-name basic-auth`).
#
# The ini in the image (docker/mlflow-auth/basic_auth.ini) is a template without secrets. This
# script writes a private copy (mode 600) with @MLFLOW_AUTH_DATABASE_URI@ replaced by
# $MLFLOW_AUTH_DATABASE_URI, and exports MLFLOW_AUTH_CONFIG_PATH pointing at it. The admin
# password is never written anywhere: MLflow reads MLFLOW_AUTH_ADMIN_PASSWORD itself when it
# creates the admin user. Nothing has a default: a missing value stops the container here, with
# the name of the variable to set.
set -eu

: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI to the basic-auth user store (postgresql://USER:PASSWORD@HOST:5432/mlflow_auth)}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (compose: export MLFLOW_ADMIN_PASSWORD, at least 12 characters)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (compose: export MLFLOW_SECRET_KEY, a long random string)}"

if [ "$#" -eq 0 ]; then
    echo "usage: sweeplab-mlflow-auth COMMAND [ARG...]  (e.g. mlflow server --app-name basic-auth ...)" >&2
    exit 2
fi

template=${SWEEPLAB_MLFLOW_AUTH_TEMPLATE:-/etc/sweeplab/mlflow-auth/basic_auth.ini}
config=${MLFLOW_AUTH_CONFIG_PATH:-${TMPDIR:-/tmp}/sweeplab-mlflow-auth/basic_auth.ini}

umask 077
mkdir -p "$(dirname "$config")"
# Python, not sed: a URL may hold any of sed's delimiters, and configparser needs `%` doubled.
python - "$template" "$config" <<'PY'
import os
import sys

template, config = sys.argv[1], sys.argv[2]
uri = os.environ["MLFLOW_AUTH_DATABASE_URI"]
if "\n" in uri or "\r" in uri:
    sys.exit("sweeplab-mlflow-auth: MLFLOW_AUTH_DATABASE_URI must be one line")
with open(template, encoding="utf-8") as f:
    text = f.read()
if "@MLFLOW_AUTH_DATABASE_URI@" not in text:
    sys.exit(f"sweeplab-mlflow-auth: {template} has no @MLFLOW_AUTH_DATABASE_URI@ placeholder")
with open(config, "w", encoding="utf-8") as f:
    f.write(text.replace("@MLFLOW_AUTH_DATABASE_URI@", uri.replace("%", "%%")))
PY

export MLFLOW_AUTH_CONFIG_PATH="$config"
exec "$@"
