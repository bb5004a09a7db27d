#!/bin/sh
# sweeplab-submit [SWEEPLAB-RUN FLAGS...]
#
# Entrypoint of the compose `submit` service (in the image as /usr/local/bin/sweeplab-submit):
# runs `sweeplab run /specs/$SPEC --address $RAY_ADDRESS` against the compose Ray cluster.
#
# A Ray driver needs a raylet on its own machine, so this container first joins the cluster as
# a node with no CPUs and no GPUs: no trial is ever scheduled here, only the driver and its
# study coordinator (0-CPU actor) live here. The trials run on the ray-worker containers.
# Extra arguments go to `sweeplab run` (e.g. --trials 50 --workers 4 --json).
set -eu

: "${SPEC:?set SPEC to a spec file under /specs (../examples), e.g. docker compose run --rm -e SPEC=seed_mlp_torch.yaml submit}"
address=${RAY_ADDRESS:-ray-head:6379}
case $SPEC in
    /*) spec=$SPEC ;;
    *) spec=/specs/$SPEC ;;
esac
if [ ! -f "$spec" ]; then
    echo "error: spec $spec not found; /specs holds: $(ls /specs 2>/dev/null | tr '\n' ' ')" >&2
    exit 2
fi

# Logs of `ray start` go to stderr, so that `--json` leaves exactly one JSON object on stdout.
ray start --address="$address" --num-cpus=0 --num-gpus=0 --disable-usage-stats >&2
exec sweeplab run "$spec" --address "$address" "$@"
