"""The service as a user runs it: `sweeplab up`, `run --detach`, `status`, `logs`, `cancel`, `down`.

One real service (a local Ray, the supervisor actor, its warm pool) is shared by the
module and always taken down at the end. Studies run a small function (sleeping
trials) from a file beside their spec, so what is measured is the service, not training.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from sweeplab_testkit import session_commands

from sweeplab.core.keys import ATTR_REASON

SWEEPLAB = [sys.executable, "-m", "sweeplab.cli"]
NOBODY = 65534

TRAIN = '''
import time

def train(trial):
    x = trial.params["x"]
    for epoch in range(1, 4):
        time.sleep(trial.options["sleep"] / 3)
        trial.reporter.report(epoch, {"score": -(x - 1) ** 2})
    return {"score": -(x - 1) ** 2}
'''


def sweeplab(*args, cwd, env=None, timeout=600):
    return subprocess.run([*SWEEPLAB, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=timeout)


def write_spec(home: Path, name: str, trials: int, sleep: float, workers: int = 2, **extra) -> Path:
    spec = {"study": name, "metric": "score", "trials": trials, "workers": workers, "seed": 0,
            "objective": {"framework": "python", "callable": "train_fn.py:train", "epochs": 3,
                          "options": {"sleep": sleep}},
            "space": {"x": {"type": "float", "low": -3.0, "high": 3.0}},
            "pruner": "none",  # every trial runs to its end: the tests count COMPLETE trials
            **extra}
    path = home / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def trials_of(home: Path, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'sweeplab.db'}").get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory, store_templates):
    """`sweeplab up --shared --no-ui --workers 2` in a fresh folder (stores' schemas copied in); `down` at the end."""
    home = tmp_path_factory.mktemp("service-home")
    shutil.copy(store_templates / "mlflow.db", home / "mlflow.db")
    (home / "train_fn.py").write_text(TRAIN)
    up = sweeplab("up", "--shared", "--no-ui", "--workers", 2, "--frameworks", "", "--json", cwd=home)
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    try:
        yield home, state
    finally:
        down = sweeplab("down", cwd=home)
        assert down.returncode == 0, down.stderr
        assert not (home / ".sweeplab" / "service.json").exists()


def test_up_writes_its_state_and_twice_is_idempotent(service):
    home, state = service
    assert state["owns_ray"] is True and state["already_running"] is False
    assert Path(state["state_file"]) == home / ".sweeplab" / "service.json"
    assert (home / ".sweeplab" / "ray_token").stat().st_mode & 0o777 == 0o600  # the local Ray's own token
    # `up` returns once warm, so the first study does not pay the imports: the pool and the
    # driver side are, and the stores studies default to here are open (the Optuna one created)
    from sweeplab.service.client import ServiceClient
    from sweeplab.service.state import read_state

    assert ServiceClient(read_state(Path(state["state_file"])), Path(state["state_file"])).call("ping")["warm"] is True
    assert (home / "sweeplab.db").exists()
    again = sweeplab("up", "--json", cwd=home)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_running"] is True
    assert json.loads(again.stdout)["daemon_pid"] == state["daemon_pid"]


def test_a_detached_study_outlives_the_terminal_that_submitted_it(service):
    home, _ = service
    spec = write_spec(home, "detached", trials=4, sleep=0.3)
    # the submitting "terminal" is a shell that exits as soon as run returns
    shell = subprocess.run(["sh", "-c", " ".join([*SWEEPLAB, "run", str(spec), "--detach"])], cwd=home,
                           capture_output=True, text=True, timeout=300)
    assert shell.returncode == 0, shell.stderr
    assert "sweeplab status detached --watch" in shell.stdout and "sweeplab logs detached" in shell.stdout

    watched = sweeplab("status", "detached", "--watch", "--json", cwd=home)
    assert watched.returncode == 0, watched.stderr
    summary = json.loads(watched.stdout)
    assert summary["study"] == "detached" and summary["n_complete"] == 4
    assert summary["mlflow_parent_run_id"] and summary["best_run_id"]
    listed = json.loads(sweeplab("status", "--json", cwd=home).stdout)
    row = next(s for s in listed["studies"] if s["study"] == "detached")
    assert row["state"] == "finished" and row["done"] == 4 and row["priority"] == 1
    log = sweeplab("logs", "detached", cwd=home)
    assert "submitted by" in log.stdout and "finished: 4 trials" in log.stdout
    typo = sweeplab("logs", "detachd", cwd=home)  # a misspelt study: named, with the closest the service knows
    assert typo.returncode == 1
    assert "knows no study 'detachd' (did you mean `detached`?)" in typo.stderr


def test_run_without_detach_follows_and_prints_the_summary(service):
    home, _ = service
    spec = write_spec(home, "followed", trials=2, sleep=0.1)
    started = time.time()
    run = sweeplab("run", spec, "--json", cwd=home)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["n_complete"] == 2 and summary["storage"] == f"sqlite:///{home / 'sweeplab.db'}"
    first = min(t.datetime_start.timestamp() for t in trials_of(home, "followed"))
    print(f"first trial started {first - started:.2f} s after `sweeplab run` was called")


def test_a_follower_learns_of_a_trial_and_of_the_end_when_they_happen(service):
    """`run` and `status --watch` follow a study with `status` requests that the supervisor holds
    until the study moves on (at most `wait_s`): the end is known at once, not at the next poll."""
    from sweeplab.service.client import ServiceClient
    from sweeplab.service.state import read_state

    home, state = service
    client = ServiceClient(read_state(Path(state["state_file"])), Path(state["state_file"]))
    spec = write_spec(home, "followed-closely", trials=2, sleep=1.5, workers=1)
    assert sweeplab("run", spec, "--detach", cwd=home).returncode == 0
    first = client.call("status", study="followed-closely")  # no wait_s: at once
    assert first["waited"] is False and first["state"] in ("queued", "running") and first["done"] == 0
    progress = client.call("status", study="followed-closely", wait_s=5.0, seen_done=0)
    assert progress["waited"] is True and progress["done"] == 1 and progress["state"] == "running"
    ended = client.call("status", study="followed-closely", wait_s=5.0)
    answered = time.time()
    assert ended["state"] == "finished" and ended["done"] == 2
    assert answered - ended["ended_at"] < 0.5, "the answer came at the next poll, not when the study ended"


def test_a_local_service_runs_each_studys_coordinator_in_the_supervisor(service):
    """Every trial of a local service runs on its machine: the study's coordinator is served from
    the supervisor's process (no actor to start or call, and none kept spare), while it runs."""
    from sweeplab.service.client import ServiceClient
    from sweeplab.service.state import read_state

    home, state = service
    client = ServiceClient(read_state(Path(state["state_file"])), Path(state["state_file"]))
    spec = write_spec(home, "coordinated-here", trials=2, sleep=1.5, workers=1)
    assert sweeplab("run", spec, "--detach", cwd=home).returncode == 0
    progress = client.call("status", study="coordinated-here", wait_s=5.0, seen_done=0)
    assert progress["state"] == "running" and progress["done"] == 1  # the second trial runs now
    titles = session_commands(state["daemon_pid"])  # the service's processes: its Ray's are in its session
    assert any(t.startswith("ray::Supervisor") for t in titles), titles
    assert not [t for t in titles if "Coordinator" in t], titles
    ended = client.call("status", study="coordinated-here", wait_s=5.0)
    assert ended["state"] == "finished" and ended["done"] == 2
    assert [t.state.name for t in trials_of(home, "coordinated-here")] == ["COMPLETE", "COMPLETE"]


def test_a_short_study_is_not_starved_by_a_long_one(service):
    home, _ = service
    long_spec = write_spec(home, "long", trials=16, sleep=1.5)
    short_spec = write_spec(home, "short", trials=3, sleep=0.6)
    assert sweeplab("run", long_spec, "--detach", cwd=home).returncode == 0
    deadline = time.time() + 300
    while time.time() < deadline and not [t for t in _safe_trials(home, "long") if t.state.name == "COMPLETE"]:
        time.sleep(0.5)
    submitted = sweeplab("run", short_spec, "--detach", "--priority", 1, cwd=home)
    assert submitted.returncode == 0, submitted.stderr
    assert sweeplab("status", "short", "--watch", cwd=home).returncode == 0
    short_end = max(t.datetime_complete.timestamp() for t in trials_of(home, "short"))
    assert sweeplab("status", "long", "--watch", cwd=home).returncode == 0
    long_trials = trials_of(home, "long")
    assert max(t.datetime_complete.timestamp() for t in long_trials) > short_end  # the short one finished first
    short_start = min(t.datetime_start.timestamp() for t in trials_of(home, "short"))
    during = [t for t in long_trials if short_start < t.datetime_complete.timestamp() < short_end]
    assert during, "the long study made no progress while the short one ran"


def test_cancel_stops_cleanly_only_for_its_owner_and_resume_finishes_it(service):
    home, state = service
    spec = write_spec(home, "cancelled", trials=8, sleep=3.0)
    assert sweeplab("run", spec, "--detach", cwd=home).returncode == 0
    deadline = time.time() + 300
    while time.time() < deadline and not [t for t in _safe_trials(home, "cancelled") if t.state.name == "RUNNING"]:
        time.sleep(0.3)

    # another local user (the service is --shared) may look, not cancel
    public = Path(tempfile.mkdtemp(prefix="sweeplab-test-"))  # pytest's own folders are private to root
    try:
        public.chmod(0o755)
        readable = public / "service.json"
        shutil.copy(state["state_file"], readable)
        readable.chmod(0o644)
        assert os.stat(state["socket"]).st_mode & 0o777 == 0o666  # --shared: every local user may connect
        code, err = _as_user(NOBODY, ["cancel", "cancelled"], readable)
    finally:
        shutil.rmtree(public)
    assert code == 1, err
    assert "permission denied" in err and "only that user or the service's operator" in err

    cancelled = sweeplab("cancel", "cancelled", "--json", cwd=home)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    lost = [t for t in trials_of(home, "cancelled") if t.state.name == "FAIL"]
    assert lost and all("lost" in t.user_attrs.get(ATTR_REASON, "") for t in lost)
    assert not [t for t in trials_of(home, "cancelled") if t.state.name == "RUNNING"]
    from mlflow.tracking import MlflowClient

    parent = json.loads(sweeplab("status", "cancelled", "--json", cwd=home).stdout)["mlflow_parent_run_id"]
    assert MlflowClient(f"sqlite:///{home / 'mlflow.db'}").get_run(parent).info.status == "KILLED"

    resumed = sweeplab("run", spec, "--json", "--trials", 3, cwd=home)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["n_complete"] == 3


def test_the_study_resumes_when_the_supervisor_is_killed(service):
    home, state = service
    spec = write_spec(home, "restarted", trials=6, sleep=1.5)
    assert sweeplab("run", spec, "--detach", cwd=home).returncode == 0
    deadline = time.time() + 300
    while time.time() < deadline and not [t for t in _safe_trials(home, "restarted") if t.state.name == "COMPLETE"]:
        time.sleep(0.3)
    kill = ("import ray, sys; ray.init(address=sys.argv[1], namespace='sweeplab', logging_level='ERROR'); "
            "ray.kill(ray.get_actor('supervisor'), no_restart=False)")
    token = (home / ".sweeplab" / "ray_token").read_text()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    killed = subprocess.run([sys.executable, "-c", kill, state["ray_address"]], capture_output=True, text=True,
                            timeout=300, env=env)
    assert killed.returncode == 0, killed.stderr

    watched = sweeplab("status", "restarted", "--watch", "--json", cwd=home)
    assert watched.returncode == 0, watched.stderr
    trials = trials_of(home, "restarted")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6  # nothing lost
    assert len({t.number for t in complete}) == 6
    for t in trials:  # nothing repeated: every other trial is one the kill cut short, retried once
        if t.state.name != "COMPLETE":
            assert t.state.name == "FAIL" and "lost" in t.user_attrs.get(ATTR_REASON, "")
    assert "resumed after a restart of the supervisor" in sweeplab("logs", "restarted", cwd=home).stdout
    # its progress counts the trials finished before the restart too
    listed = json.loads(sweeplab("status", "--json", cwd=home).stdout)
    assert next(s for s in listed["studies"] if s["study"] == "restarted")["done"] == 6


def test_without_a_service_the_service_commands_say_how_to_start_one(tmp_path):
    spec = write_spec(tmp_path, "nothing", trials=1, sleep=0.0)
    for args, needle in ((["run", spec, "--detach"], "--detach needs a service: start one with `sweeplab up`"),
                         (["status"], "no sweeplab service runs here"),
                         (["cancel", "nothing"], "no sweeplab service runs here"),
                         (["down"], "nothing to stop")):
        out = sweeplab(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert needle in out.stderr


def _safe_trials(home: Path, name: str):
    try:
        return trials_of(home, name)
    except KeyError:  # not created yet
        return []


def _as_user(uid: int, argv: list[str], state_file: Path) -> tuple[int, str]:
    """``sweeplab ARGV`` as OS user ``uid`` (a forked child of this process: the installed Python
    is not readable by other users here); its exit code and stderr."""
    from sweeplab.cli import main

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.dup2(write, 2)
            sys.stderr = open(2, "w", closefd=False)  # not pytest's capture: the parent reads the pipe
            os.setgid(uid)
            os.setuid(uid)
            os.environ["SWEEPLAB_SERVICE"] = str(state_file)
            code = main(argv)
        except BaseException as exc:
            sys.stderr.write(f"child crashed: {exc!r}\n")
            code = 99
        sys.stderr.flush()
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as out:
        err = out.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err
