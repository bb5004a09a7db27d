"""The coordinator in the driver (a study on a local Ray it starts itself) and the keyed
channel its trials reach it through (sweeplab.search.channel)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import optuna
import pytest
from sweeplab_testkit import bowl_spec, child_runs

from sweeplab.core.keys import ATTR_LEASE_HOLDER
from sweeplab.search.channel import CoordinatorLink, CoordinatorServer, CoordinatorUnreachable
from sweeplab.search.coordinator import StudyCoordinator


def _coordinator(stores):
    spec = bowl_spec(trials=4, sampler={"name": "random"},
                     pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    return StudyCoordinator(spec.to_dict(), stores["storage"], checkpoint_dir=str(stores["dir"] / "ckpt"))


def test_channel_carries_reports_pruning_decisions_and_checkpoints(stores):
    coordinator = _coordinator(stores)
    server = CoordinatorServer(coordinator)
    try:
        assert server.link.host == "127.0.0.1"
        # a first trial sets the median: 1.0 at every epoch
        first = coordinator.ask()
        channel = server.link.connect()
        for epoch in (1, 2, 3):
            assert channel.call("report", first.number, epoch, {"score": 1.0}, None) is False
        from sweeplab.core.records import COMPLETE, TrialOutcome

        coordinator.tell(TrialOutcome(first.number, COMPLETE, {"score": 1.0, "loss": 0.0}))
        channel.close()
        # a second trial far below it is pruned through the channel; reports sent without
        # waiting are all recorded once flushed, in order
        second = coordinator.ask()
        channel = server.link.connect()
        for epoch in (1, 2):
            channel.send("report", second.number, epoch, {"score": 0.1}, None)
        channel.flush()
        assert channel.call("report", second.number, 3, {"score": 0.1}, None) is True
        frozen = coordinator.study.get_trials(deepcopy=False)[second.number]
        assert frozen.intermediate_values == {1: 0.1, 2: 0.1, 3: 0.1}
        assert channel.call("save_checkpoint", second.number, b"weights") is True
        assert channel.call("load_checkpoint", second.number) == b"weights"
        # a trial that reports every step and never waits does not fill the socket with unread
        # answers (20,000 unanswered calls would block both sides otherwise)
        for _ in range(20_000):
            channel.send("load_checkpoint", second.number)
        channel.flush()
        assert channel.call("load_checkpoint", second.number) == b"weights"
        # only the trial-facing methods are served
        with pytest.raises(CoordinatorUnreachable, match="unknown coordinator method 'tell'"):
            channel.call("tell", second.number)
        # the coordinator's own errors come back with their type
        with pytest.raises(CoordinatorUnreachable, match="TypeError"):
            channel.call("report", second.number)
        channel.close()
        # a connection without the study's key is refused before anything is read from it
        stranger = CoordinatorLink(server.link.host, server.link.port, b"not the key").connect()
        with pytest.raises(CoordinatorUnreachable, match="refused this trial's key"):
            stranger.call("report", second.number, 4, {"score": 5.0}, None)
        assert 4 not in coordinator.study.get_trials(deepcopy=False)[second.number].intermediate_values
        # a connection open when the server closes fails its next call; new ones are refused
        channel = server.link.connect()
        assert channel.call("load_checkpoint", second.number) == b"weights"
        server.close()
        with pytest.raises(CoordinatorUnreachable):
            channel.call("load_checkpoint", second.number)
        with pytest.raises(CoordinatorUnreachable, match="cannot reach the study's coordinator"):
            server.link.connect().call("load_checkpoint", second.number)
    finally:
        server.close()


def _sends_at_once(conn) -> bool:
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_report_nobody_waits_for_is_answered_while_the_driver_is_busy_and_recorded_before_the_tell(stores):
    """A study whose pruner never prunes: a worker's reports go to report_queued, whose answer
    does not wait for the coordinator (held by an ask or a tell of the driver), so a trial's
    end does not wait for them either; the tell records them first, in order."""
    import threading

    from sweeplab.core.records import COMPLETE, TrialOutcome

    spec = bowl_spec(trials=4, sampler={"name": "random"}, pruner={"name": "none"})
    coordinator = StudyCoordinator(spec.to_dict(), stores["storage"])
    server = CoordinatorServer(coordinator)
    ticket = coordinator.ask()
    assert ticket.prunable is False
    channel = server.link.connect()
    busy, answered = threading.Event(), threading.Event()
    release = threading.Event()

    def driver_busy() -> None:  # the loop's thread in the middle of an ask
        with coordinator._lock:
            busy.set()
            release.wait(30)

    holder = threading.Thread(target=driver_busy)
    holder.start()
    try:
        busy.wait(10)
        for epoch in (1, 2, 3):
            channel.send("report_queued", ticket.number, epoch, {"score": 0.1 * epoch}, 1000.0 + epoch)
        flushing = threading.Thread(target=lambda: (channel.flush(), answered.set()))
        flushing.start()
        assert answered.wait(10)  # answered while the coordinator is held
    finally:
        release.set()
        holder.join()
    record = coordinator.tell(TrialOutcome(ticket.number, COMPLETE, {"score": 0.3}))
    assert [(epoch, at) for epoch, at, _ in record.history] == [(1, 1001.0), (2, 1002.0), (3, 1003.0)]
    stored = optuna.load_study(study_name="bowl", storage=stores["storage"]).trials[ticket.number]
    assert stored.intermediate_values == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})
    channel.close()
    server.close()


def test_the_trials_of_a_worker_process_take_turns_on_one_connection_that_sends_at_once(stores):
    """A connection per trial (TCP, both key challenges, a server thread) cost more than a
    short trial's reports, and with Nagle's algorithm a small message waited for the peer's
    delayed acknowledgement (40 ms): a trial that ends hands its connection to the next one
    of its process, and both ends send at once. (White-box: the connections are private.)"""
    coordinator = _coordinator(stores)
    server = CoordinatorServer(coordinator)
    try:
        trial = coordinator.ask()
        first = server.link.connect()
        first.send("report", trial.number, 1, {"score": 0.5}, None)
        first.flush()
        conn = first._conn
        assert _sends_at_once(conn)
        assert all(_sends_at_once(c) for c in server._connections) and len(server._connections) == 1
        first.close()
        with pytest.raises(CoordinatorUnreachable, match="the trial has ended"):
            first.call("load_checkpoint", trial.number)  # a late call of an ended trial
        second = server.link.connect()
        assert second.call("report", trial.number, 2, {"score": 0.5}, None) is False
        assert second._conn is conn and len(server._connections) == 1  # taken over, not opened again
        assert coordinator.study.get_trials(deepcopy=False)[trial.number].intermediate_values == {1: 0.5, 2: 0.5}
        second.close()
        # the server is gone: its idle connection is not handed to the next trial, which connects anew
        server.close()
        with pytest.raises(CoordinatorUnreachable, match="cannot reach the study's coordinator"):
            server.link.connect().call("load_checkpoint", trial.number)
    finally:
        server.close()


OWN_RAY = """
import json, os, sys, ray
from sweeplab_testkit import bowl_spec, run
stores = {"storage": sys.argv[1], "tracking": sys.argv[2]}
spec = dict(trials=12, workers=2, sampler={"name": "random"},
            pruner={"name": "median", "n_startup_trials": 3, "n_warmup_steps": 1},
            objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 8})
out = {"pid": os.getpid()}
s = run(bowl_spec(study="in-driver", **spec), stores, address="local")  # the documented way to a local Ray
out["in_driver"] = [s.n_trials, s.n_pruned, s.mlflow_parent_run_id, ray.is_initialized()]
s = run(bowl_spec(study="as-actor", **spec), stores, executor="ray", driver_coordinator=False)
out["as_actor"] = [s.n_trials, s.n_pruned, s.mlflow_parent_run_id, ray.is_initialized()]
print(json.dumps(out))
"""


def test_a_study_on_its_own_local_ray_keeps_its_coordinator_in_the_driver(stores):
    """The run starts its Ray: the trials' one writer is the driver process itself (their
    lease holder's pid), pruning and MLflow work as with the actor; driver_coordinator=False
    keeps the actor (another process); Ray is shut down after each."""
    proc = subprocess.run([sys.executable, "-c", OWN_RAY, stores["storage"], stores["tracking"]],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for study_name, in_driver in (("in-driver", True), ("as-actor", False)):
        n_trials, n_pruned, parent, ray_left_up = out[study_name.replace("-", "_")]
        assert n_trials == 12 and n_pruned >= 1 and not ray_left_up
        study = optuna.load_study(study_name=study_name, storage=stores["storage"])
        holders = {int(t.user_attrs[ATTR_LEASE_HOLDER].split(":")[1]) for t in study.trials}
        assert (holders == {out["pid"]}) if in_driver else (out["pid"] not in holders and len(holders) == 1)
        pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
        assert len(pruned) == n_pruned
        for t in pruned:
            assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["sweeplab.pruned_at_epoch"] + 1))
        runs = child_runs(stores, parent)
        assert len(runs) == 12
        assert sum(r.info.status == "KILLED" for r in runs) == n_pruned
