"""Opening a study: everything that must be in place before its first trial.

:func:`open_session` returns a :class:`StudySession` holding the coordinator, the
executor, the MLflow tracker and the dataset, with the study resumed: trials a dead
driver left RUNNING reaped (and retried), MLflow repaired after an earlier crash, and the
number of trials already finished. ``options.executor`` picks where trials run (``"auto"``,
the default: :func:`pick_executor`):

- ``"processes"`` (a study on this machine alone): worker processes this call starts
  (:mod:`sweeplab.search.processes`), first, so that they import the objective's
  framework while this process opens the dataset, the stores and MLflow; the coordinator
  is an object of this process, reached through a
  :class:`~sweeplab.search.channel.CoordinatorServer`. No Ray: on a small machine its
  own processes took the CPU that this start-up needs. A new study does not wait for
  MLflow: its parent run is opened on a thread while the first trials run
  (:class:`_TrackingOpening`, :attr:`StudySession.opening`).
- ``"ray"`` (clusters, the service, GPU trials): join or start Ray, put the dataset in the
  object store once, run trials as Ray tasks. Starting a local Ray is mostly waiting for its processes, so this
  process's own work (the dataset, the Optuna storage, MLflow's import) is done on a
  thread meanwhile. The coordinator: in a Ray this call started (local, so every worker
  is on this machine), an object of this process that trials reach through a
  :class:`~sweeplab.search.channel.CoordinatorServer` on 127.0.0.1; in a Ray that was
  joined (a cluster, or one the caller started), an actor pinned to this node.
- ``"in-process"`` (tests, small local runs): the coordinator is an object here and
  trials run on threads; no Ray at all.

Each start-up and storage speed-up has a switch in :class:`RunOptions`
(``overlap_startup``, ``warm_workers``, ``driver_coordinator``, ``storage_options``);
:meth:`RunOptions.without_speedups` turns them all off, which is how benchmarks measure
"before" against "after".

:meth:`StudySession.release` gives back what the session started (the coordinator
actor or server; a local Ray this call started, shut down in the background while the
caller writes its report).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweeplab.core.compat import private_ray_shutdown_usable
from sweeplab.core.defaults import DEFAULT_FAIL_FAST
from sweeplab.core.errors import RAY_TOKEN_HINT, StorageError, SweeplabError, UsageError
from sweeplab.core.keys import (
    STUDY_ATTR_EXPERIMENT_ID,
    STUDY_ATTR_PARENT_RUN_ID,
    STUDY_ATTR_TRACKING_URI,
    STUDY_ATTR_TRIALS_TARGET,
)
from sweeplab.core.records import TrialRecord
from sweeplab.core.stores import LOCAL_RAY, RAY_ADDRESS_ENV, ray_address
from sweeplab.search.channel import CoordinatorServer
from sweeplab.search.executor import Coordinator, InProcessExecutor, RayExecutor, RemoteCoordinator, TrialExecutor
from sweeplab.search.storage import StorageOptions

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import StudySpec

log = logging.getLogger("sweeplab.search")

EXECUTORS = ("auto", "ray", "processes", "in-process")
"""Where a study's trials run (``RunOptions.executor``); ``auto`` picks with :func:`pick_executor`."""
START_UP_SPEEDUPS = ("local_processes", "overlap_startup", "warm_workers", "driver_coordinator")
"""The boolean start-up switches of :class:`RunOptions` (each on by default; benchmarks turn
them off one at a time, or all with :meth:`RunOptions.without_speedups`)."""


class StudyInterrupted(SweeplabError):
    """The user stopped the study (Ctrl-C); it can be resumed with the same command."""

    exit_code = 130


@dataclass
class RunOptions:
    """How to run a study: stores, cluster, executor, and what to show."""

    storage_url: str
    tracking_uri: str
    address: str | None = None
    progress: bool = True
    lease_seconds: float = 60.0
    resume_command: str = ""
    on_record: Callable[[TrialRecord], None] | None = None
    on_open: Callable[[int], None] | None = None  # the study is open: its trials finished before this run
    allow_local_stores: bool = False
    package_best: bool = True  # re-fit the best torch/keras trial on a worker, log its model + evaluation
    ray_init_kwargs: dict[str, Any] = field(default_factory=dict)
    executor: str = "auto"  # one of EXECUTORS
    stop: threading.Event | None = None  # set it to stop the study like Ctrl-C (from another thread)
    fail_fast: int = DEFAULT_FAIL_FAST  # stop when a study's first N trials fail alike (0: never)
    # The study's function (framework python), instead of the spec's objective.callable: sent to the
    # trials as it is (by value when defined in __main__, as in a notebook), once per study.
    objective_fn: Callable[..., Any] | None = None
    # Several studies sharing one pool of workers (the service): a trial starts only when the gate
    # lets it (sweeplab.search.loop.TrialGate); None: only `workers` bounds the study.
    gate: Any = None
    # Ray sessions: makes the study's coordinator actor from StudyCoordinator's arguments (the
    # service hands out one it started ahead, its imports done); None: a new actor on this node.
    coordinator_actor: Callable[..., Any] | None = None
    # Ray sessions: every worker of the Ray already running is on this machine (the service's own
    # local Ray), so trials reach a coordinator in this process, as in a Ray this run starts.
    workers_here: bool = False
    # Speed-ups, each on by default (see without_speedups):
    local_processes: bool = True  # executor "auto": a study on this machine alone runs in worker processes, no Ray
    # dataset, Optuna storage and MLflow opened on a thread while the workers start (a new study's MLflow
    # parent run while its first trials run, with worker processes); the report's imports while they train
    overlap_startup: bool = True
    warm_workers: bool = True  # Ray workers import the objective's framework while the coordinator starts
    driver_coordinator: bool = True  # in a Ray this run starts: the coordinator in this process, not an actor
    storage_options: StorageOptions = field(default_factory=StorageOptions)  # held storage, SQLite WAL

    def without_speedups(self) -> RunOptions:
        """These options with every start-up and storage speed-up off, as a study ran before them:
        a local study on a Ray of its own, dataset, storage and MLflow opened one after another
        before Ray starts, no worker warm-up,
        the coordinator always an actor, Optuna's own storage, SQLite's default rollback journal.
        Benchmarks' "before" baseline."""
        return dataclasses.replace(self.without(*START_UP_SPEEDUPS),
                                   storage_options=StorageOptions(held=False, wal=False))

    def without(self, *speedups: str) -> RunOptions:
        """These options with the named start-up speed-ups (of :data:`START_UP_SPEEDUPS`) off; an
        unknown name is a ValueError naming the valid ones."""
        unknown = [name for name in speedups if name not in START_UP_SPEEDUPS]
        if unknown:
            raise ValueError(f"unknown start-up speed-up(s) {unknown}; use some of {list(START_UP_SPEEDUPS)}")
        options = self
        for name in speedups:
            options = dataclasses.replace(options, **{name: False})  # type: ignore[arg-type]
        return options


@dataclass
class StudySession:
    """A study ready for its trial loop (see the module docstring)."""

    coordinator: Coordinator
    executor: TrialExecutor
    tracker: Any  # sweeplab.tracking.mlflow_tracker.StudyTracker
    dataset: Dataset | None
    finished: int  # trials already finished that count toward `trials`
    succeeded: int = 0  # of those, COMPLETE or PRUNED (the objective has worked before)
    dataset_ref: Any = None  # the dataset in Ray's object store (Ray sessions)
    actor: Any = None  # the coordinator actor (Ray sessions on a Ray this session joined)
    server: CoordinatorServer | None = None  # how trials reach a coordinator in this process (local Ray)
    owns_ray: bool = False  # this session started a local Ray: shut it down at the end
    opening: _TrackingOpening | None = None  # a new study's MLflow side, opening while its first trials run

    @property
    def has_workers(self) -> bool:
        """Whether the study's trials run in other processes (Ray's, or worker processes), which
        :meth:`on_worker` can also run a call on; not for an in-process session."""
        from sweeplab.search.processes import ProcessExecutor

        return self.dataset_ref is not None or isinstance(self.executor, ProcessExecutor)

    @property
    def worker_dataset(self) -> Any:
        """The dataset as an argument of :meth:`on_worker` (on Ray, its object-store reference)."""
        return self.dataset_ref if self.dataset_ref is not None else self.dataset

    def on_worker(self, fn: Callable[..., Any], *args: Any, cpus: float, gpus: float, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` run on one of the study's workers (a Ray task with ``cpus`` and
        ``gpus``, or an idle worker process), with its value returned; raises what it raised
        (a :class:`SweeplabError` naming it, from a worker process)."""
        from sweeplab.search.processes import ProcessExecutor

        if isinstance(self.executor, ProcessExecutor):
            return self.executor.pool.call(fn, *args, **kwargs)
        if not self.has_workers:
            raise SweeplabError("this study's trials run in this process: it has no worker to run a call on")
        import ray

        task = ray.remote(max_retries=0)(fn).options(num_cpus=cpus, num_gpus=gpus)
        return ray.get(task.remote(*args, **kwargs))

    def check_tracking(self) -> None:
        """Raise why the study's MLflow side could not be opened, once that has failed (see
        :class:`_TrackingOpening`); nothing while it opens, or once it is open."""
        if self.opening is not None:
            self.opening.check()

    def wait_tracking(self) -> None:
        """Wait until the study's MLflow side is open (a new study's opens while its first
        trials run). When opening it failed: drop the MLflow requests queued meanwhile, give
        back what the session started and raise why (the trials are in Optuna; resuming the
        study creates their runs, as after a crash)."""
        if self.opening is None:
            return
        try:
            self.opening.wait()
        except BaseException as exc:
            self.tracker.writer.discard()
            stopping = self.release()
            if stopping is not None:
                stopping.join()
            if isinstance(exc, StorageError):
                raise StorageError(
                    f"{exc} The trials that ran meanwhile are kept: once the store works, run the same command "
                    "again to resume the study (their MLflow runs are created then).") from exc
            raise

    def release(self) -> threading.Thread | None:
        """Stop the coordinator actor (or the coordinator's server) and, if this session started
        it, Ray (in the background: the returned thread, to join once the caller's other closing
        work is done; None when there is nothing to wait for, or on a second call)."""
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.actor is not None:
            import ray

            ray.kill(self.actor)
            self.actor = None
        if not self.owns_ray:
            return None
        self.owns_ray = False
        return in_background(shutdown_own_ray, "sweeplab-ray-shutdown")


def open_session(spec: StudySpec, options: RunOptions, mark: Callable[[str], None]) -> StudySession:
    """Open the study of ``spec`` on ``options.executor``; ``mark(phase)`` times start-up."""
    # Decided here, so that a warning about an untested Optuna is printed once, by this process.
    options = dataclasses.replace(options, storage_options=options.storage_options.resolved())
    executor = pick_executor(spec, options)
    if executor == "in-process":
        return _open_in_process(spec, options, mark)
    if executor == "processes":
        return _open_processes(spec, options, mark)
    return _open_on_ray(spec, options, mark)


def pick_executor(spec: StudySpec, options: RunOptions) -> str:
    """Where the trials of ``spec`` run: ``options.executor``, or for ``auto``, worker processes
    of this machine (``processes``: no Ray to start) when nothing asks for Ray, else ``ray``.

    Ray is asked for by: a cluster address (``--address`` / ``$RAY_ADDRESS``; ``local``: a
    Ray of the run's own), a Ray this process already started, ``ray_init_kwargs``, a shared
    worker pool (the service's gate), GPU trials (Ray gives each its device), custom
    resources (Ray's to count), or ``options.local_processes`` off (a benchmark's "before").
    A name not in :data:`EXECUTORS` is a UsageError naming them.
    """
    if options.executor not in EXECUTORS:
        raise UsageError(f"executor must be one of {list(EXECUTORS)}, got {options.executor!r}")
    if options.executor != "auto":
        return options.executor
    import sys

    ray_started_here = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    wants_ray = (not options.local_processes or ray_address(options.address) or ray_started_here
                 or options.ray_init_kwargs or options.gate is not None or spec.resources.gpu > 0
                 or spec.resources.custom)
    return "ray" if wants_ray else "processes"


def _open_in_process(spec: StudySpec, options: RunOptions, mark: Callable[[str], None]) -> StudySession:
    from sweeplab.objectives.python_callable import check_objective_callable
    from sweeplab.search.checkpoints import checkpoint_root
    from sweeplab.search.coordinator import StudyCoordinator

    check_objective_callable(spec.objective, spec.source, isolated=False)  # the trials import it here anyway
    dataset = load_study_dataset(spec, options.tracking_uri)
    coordinator = StudyCoordinator(spec.to_dict(), options.storage_url, options.lease_seconds,
                                   storage_options=options.storage_options,
                                   checkpoint_dir=str(checkpoint_root(options.storage_url)))
    mark("coordinator")
    tracker = _open_tracking(spec, options, coordinator, None)
    mark("mlflow_open")
    finished, succeeded = _resume(spec, coordinator, tracker, dataset)
    executor = InProcessExecutor(coordinator, dataset, spec.objective, list(spec.metric), spec.workers,
                                 spec.resources.cpu, user_fn=options.objective_fn)
    mark("resume_checks")
    return StudySession(coordinator, executor, tracker, dataset, finished, succeeded)


def _open_processes(spec: StudySpec, options: RunOptions, mark: Callable[[str], None]) -> StudySession:
    """Trials in worker processes of this machine (:mod:`sweeplab.search.processes`). The
    workers start first, so that their imports run while this process opens the study."""
    from sweeplab.search import preflight
    from sweeplab.search.checkpoints import checkpoint_root
    from sweeplab.search.coordinator import StudyCoordinator
    from sweeplab.search.processes import ProcessExecutor, WorkerPool, check_fits_here, parallel_trials

    preflight.check_tracking_store(options.tracking_uri)
    check_fits_here(spec.resources.cpu, spec.source)  # GPUs and custom resources go to Ray (pick_executor)
    check_sendable(options.objective_fn)
    mark("preflight")
    warm = (spec.objective.framework, getattr(spec.objective, "callable", None)) \
        if _worth_warming(spec, options) else None
    pool = WorkerPool(parallel_trials(spec.workers, spec.resources.cpu), warm)
    server = None
    preparing = _Preparation(spec, options)
    try:
        dataset = preparing.for_trials()
        mark("dataset_storage")
        coordinator = StudyCoordinator(spec.to_dict(), options.storage_url, options.lease_seconds,
                                       storage_options=options.storage_options,
                                       checkpoint_dir=str(checkpoint_root(options.storage_url)))
        server = CoordinatorServer(coordinator)
        mark("coordinator")
        opening = None
        if options.overlap_startup and _is_new(coordinator):
            opening = _TrackingOpening(spec, options, coordinator, preparing)  # while the first trials run
            tracker = preparing.tracker
        else:
            _, tracker = preparing.result()
            mark("mlflow_import")
            tracker = _open_tracking(spec, options, coordinator, tracker)
            mark("mlflow_open")
        finished, succeeded = _resume(spec, coordinator, tracker if opening is None else None, dataset)
        executor = ProcessExecutor(pool, server.link, dataset, spec.objective, list(spec.metric), spec.resources.cpu,
                                   user_fn=options.objective_fn)
        mark("resume_checks")
    except BaseException:
        preparing.abandon()
        pool.close()
        if server is not None:
            server.close()
        raise
    return StudySession(coordinator, executor, tracker, dataset, finished, succeeded, server=server,
                        opening=opening)


def _is_new(coordinator: Coordinator) -> bool:
    """Whether the study has no trial and no MLflow parent run yet (nothing to resume)."""
    counts = coordinator.counts()
    return (STUDY_ATTR_PARENT_RUN_ID not in coordinator.study_attrs()
            and not any(counts[state] for state in ("finished", "RUNNING", "WAITING", "retried", "rejected")))


def _open_on_ray(spec: StudySpec, options: RunOptions, mark: Callable[[str], None]) -> StudySession:
    import ray

    from sweeplab.search import preflight
    from sweeplab.search.checkpoints import checkpoint_root
    from sweeplab.search.coordinator import StudyCoordinator

    address = ray_address(options.address)
    joins = address not in (None, LOCAL_RAY)  # a cluster; "local" is a Ray of this run's own, as no address
    preflight.check_ray_address(address)
    preflight.check_tracking_store(options.tracking_uri)
    init_kwargs = _ray_init_kwargs(spec, options, address if joins else None)
    if joins:
        init_ray(address, **init_kwargs)
        if not options.allow_local_stores:
            preflight.check_stores_reach_cluster(options.storage_url, options.tracking_uri, address)
    mark("preflight")
    preparing = _Preparation(spec, options)
    owns_ray = not ray.is_initialized()
    init_ray(address, **init_kwargs)
    mark("ray_init")
    try:
        preflight.check_trial_resources(spec.resources, source=spec.source)
        objective_ref = put_objective(options.objective_fn)
    except BaseException:
        preparing.abandon()  # no study, no run was created yet; leave nothing running either
        if owns_ray:
            shutdown_own_ray()
        raise
    if options.warm_workers and _worth_warming(spec, options):
        _warm_workers(spec)  # workers import the objective's framework while the coordinator starts
    try:
        dataset, tracker = preparing.result()  # bad data raises here, before any store was touched
    except BaseException:
        if owns_ray:
            shutdown_own_ray()
        raise
    mark("dataset_storage_mlflow_import")

    coordinator: Coordinator
    actor, server = None, None
    checkpoint_dir = str(checkpoint_root(options.storage_url))
    if options.driver_coordinator and (owns_ray or options.workers_here):
        # Every worker is on this machine (a Ray this call started, or options.workers_here): no
        # actor process to start; trials reach the coordinator on 127.0.0.1.
        try:
            local = StudyCoordinator(spec.to_dict(), options.storage_url, options.lease_seconds,
                                     storage_options=options.storage_options, checkpoint_dir=checkpoint_dir)
            server = CoordinatorServer(local)
        except BaseException:
            if owns_ray:
                shutdown_own_ray()
            raise
        coordinator, reached_by = local, server.link
    else:
        actor = _coordinator_actor(spec, options, checkpoint_dir)
        coordinator, reached_by = RemoteCoordinator(actor), actor
        try:
            coordinator.study_attrs()
        except ray.exceptions.RayActorError as exc:
            raise StorageError(f"the study coordinator could not start: {exc}") from exc
    mark("coordinator")
    tracker = _open_tracking(spec, options, coordinator, tracker)
    mark("mlflow_open")
    finished, succeeded = _resume(spec, coordinator, tracker, dataset)
    dataset_ref = ray.put(dataset)
    executor = RayExecutor(reached_by, dataset_ref, spec.objective, list(spec.metric), spec.resources.cpu,
                           spec.resources.gpu, custom=spec.resources.custom, user_fn_ref=objective_ref)
    mark("resume_checks_dataset_put")
    return StudySession(coordinator, executor, tracker, dataset, finished, succeeded, dataset_ref=dataset_ref,
                        actor=actor, server=server, owns_ray=owns_ray)


def _coordinator_actor(spec: StudySpec, options: RunOptions, checkpoint_dir: str) -> Any:
    """The study's coordinator as a Ray actor pinned to this node (its SQLite files and
    checkpoints are this machine's), serving the driver and every trial's reports; made by
    ``options.coordinator_actor`` when given (the service's spare actors)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from sweeplab.search.coordinator import StudyCoordinator

    args = (spec.to_dict(), options.storage_url, options.lease_seconds)
    kwargs = {"storage_options": options.storage_options, "checkpoint_dir": checkpoint_dir}
    if options.coordinator_actor is not None:
        return options.coordinator_actor(*args, **kwargs)
    actor_cls = ray.remote(num_cpus=0, max_concurrency=64, max_restarts=0)(StudyCoordinator)  # type: ignore[call-overload]
    return actor_cls.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False),
    ).remote(*args, **kwargs)


def _ray_init_kwargs(spec: StudySpec, options: RunOptions, address: str | None) -> dict[str, Any]:
    """``ray.init``'s arguments: ``options.ray_init_kwargs``, plus, when joining a cluster at
    ``address``, a job ``runtime_env`` that ships a file callable's folder to every worker
    (Ray takes local folders at the job level only). A local Ray reads the file in place; a
    Ray started by the caller, or a ``working_dir`` of the caller's own, is left as it is."""
    from sweeplab.objectives.python_callable import code_runtime_env

    kwargs = dict(options.ray_init_kwargs)
    env = code_runtime_env(getattr(spec.objective, "callable", None)) if address else None
    if env is None:
        return kwargs
    import ray

    given = dict(kwargs.get("runtime_env") or {})
    if ray.is_initialized() or "working_dir" in given:
        log.warning("objective.callable %s is not shipped to the cluster's workers: Ray was started with its own "
                    "runtime_env (or before the study); give it runtime_env={'working_dir': %r} so every node "
                    "has the file", spec.objective.callable, env["working_dir"])
        return kwargs
    kwargs["runtime_env"] = {**given, **env, "env_vars": {**dict(given.get("env_vars") or {}), **env["env_vars"]}}
    return kwargs


def _open_tracking(spec: StudySpec, options: RunOptions, coordinator: Coordinator, tracker: Any) -> Any:
    """Open (or find again) the study's MLflow parent run and link it with the study."""
    from sweeplab.tracking.mlflow_tracker import StudyTracker

    tracker = tracker or StudyTracker(options.tracking_uri, spec.experiment or spec.study, spec.study)
    tracker.on_run_created = coordinator.link_run  # before open: trials' runs queued meanwhile are created then
    experiment_id, parent_run_id = tracker.open(spec.to_dict(), coordinator.study_attrs().get(STUDY_ATTR_PARENT_RUN_ID))
    for key, value in ((STUDY_ATTR_TRIALS_TARGET, spec.trials),  # what status shows as "of N"
                       (STUDY_ATTR_EXPERIMENT_ID, experiment_id), (STUDY_ATTR_PARENT_RUN_ID, parent_run_id),
                       (STUDY_ATTR_TRACKING_URI, options.tracking_uri)):
        coordinator.set_study_attr(key, value)
    return tracker


def _resume(spec: StudySpec, coordinator: Coordinator, tracker: Any, dataset: Dataset | None) -> tuple[int, int]:
    """Reap what a dead driver left RUNNING, repair MLflow (``tracker`` None: a new study,
    nothing to repair), tell the coordinator the data's shape (what constraints count
    with); return the trials already finished."""
    for record in coordinator.reap_stale():
        log.warning("trial %d was left RUNNING by a dead driver: failed%s", record.number,
                    f", retried as trial {record.retried_by}" if record.retried_by is not None else "")
    try:
        repaired = tracker.reconcile(coordinator.finished_digest(), spec.metric[0]) if tracker is not None else {}
        if any(repaired.values()):
            log.warning("MLflow repaired after an earlier crash: %s", repaired)
    except Exception as exc:  # tracking must never stop a study; the repair runs again next time
        log.warning("could not reconcile MLflow with the study (%s); will retry on the next run", exc)
    if dataset is not None:
        source = getattr(dataset, "init_from", None)
        coordinator.set_data_shape(dataset.n_features, dataset.n_outputs,
                                   source.architecture() if source is not None else None)
    counts = coordinator.counts()
    return int(counts["finished"]), int(counts["COMPLETE"]) + int(counts["PRUNED"])


def init_ray(address: str | None, **kwargs: Any) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    # "local" starts a private instance; plain None would attach to whatever cluster
    # `ray start` last left in /tmp/ray, which is not what "no --address" means here.
    address = ray_address(address) or LOCAL_RAY
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
    options.update(kwargs)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StorageError(
            f"cannot connect to the Ray cluster at {address!r}: {exc}. "
            f"Check --address / ${RAY_ADDRESS_ENV} (e.g. 127.0.0.1:6379), that `ray start --head` runs there and, "
            f"{RAY_TOKEN_HINT}."
        ) from exc


def load_study_dataset(spec: StudySpec, tracking_uri: str | None = None, *,
                       merge_validation: bool = False) -> Dataset | None:
    """The spec's dataset, split and scaled (None for python objectives without one).

    ``merge_validation``: the refit's data (train + validation merged, the same test part;
    see :func:`~sweeplab.objectives.data.load_dataset`).

    With ``objective.init_from`` the source model is downloaded once from ``tracking_uri``
    (None: ``$MLFLOW_TRACKING_URI`` or MLflow's default) and attached to the dataset
    (``Dataset.init_from``, see :mod:`sweeplab.objectives.transfer`), so every trial gets
    it with the arrays; a source with another number of input features is a DataError.
    """
    obj = spec.objective
    if obj.dataset is None:
        return None
    from sweeplab.objectives.data import load_dataset

    ds = obj.dataset
    dataset = load_dataset(task=obj.task, name=ds.name, path=ds.path, target=ds.target, options=dict(ds.options),
                           validation_split=obj.validation_split, test_split=obj.test_split, seed=spec.seed,
                           model=obj.model, validation=obj.validation, merge_validation=merge_validation,
                           holdout_path=obj.holdout.path if obj.holdout else None,
                           holdout_target=obj.holdout.target if obj.holdout else "target")
    if obj.init_from:
        from sweeplab.objectives.transfer import attach_source
        from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri
        from sweeplab.tracking.sources import fetch_source_model

        source = fetch_source_model(obj.init_from, resolve_tracking_uri(tracking_uri))
        dataset = attach_source(dataset, source)
    return dataset


class _Preparation:
    """The study's own start-up work, on a thread while Ray or the workers start (here and
    now, before Ray starts, without ``options.overlap_startup``).

    In order: import a python objective's callable in a subprocess (a SpecError for a
    typo), load the dataset (a DataError here touches no store), check that the
    constraints can hold, create or open the Optuna storage (its schema exists before
    any worker starts), then import MLflow and open its store. :meth:`for_trials` waits
    for the steps up to the Optuna storage and returns the dataset; :meth:`result` waits
    for all and returns ``(dataset, tracker)``; both re-raise the first error. The tracker
    (made here, unopened) has its store opened when that succeeded; when it failed, the
    caller's ``StudyTracker.open`` fails again and says why, where it always did.
    """

    def __init__(self, spec: StudySpec, options: RunOptions) -> None:
        from sweeplab.tracking.mlflow_tracker import StudyTracker

        self.spec, self.options = spec, options
        self.dataset: Dataset | None = None
        self.tracker = StudyTracker(options.tracking_uri, spec.experiment or spec.study, spec.study)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.abandoned = threading.Event()
        self.trials_can_start = threading.Event()  # the steps before MLflow's are done (or one failed)
        if options.overlap_startup:
            self.thread = in_background(self._run, "sweeplab-prepare")
        else:
            self._run()

    def _run(self) -> None:
        spec, options = self.spec, self.options
        try:
            from sweeplab.objectives.python_callable import check_objective_callable
            from sweeplab.search.storage import open_storage

            check_objective_callable(spec.objective, spec.source)  # a typo is a spec problem: exit 2
            self.dataset = load_study_dataset(spec, options.tracking_uri)
            if self.dataset is not None and spec.constraints:
                from sweeplab.search.constraints import check_satisfiable

                source = getattr(self.dataset, "init_from", None)
                check_satisfiable(spec, self.dataset.n_features, self.dataset.n_outputs,
                                  source.architecture() if source is not None else None)
            if self.abandoned.is_set():
                return
            open_storage(options.storage_url, wal=options.storage_options.wal)
        except BaseException as exc:  # re-raised on the caller's thread
            self.error = exc
            return
        finally:
            self.trials_can_start.set()
        if self.abandoned.is_set():
            return
        try:
            self.tracker.client.get_experiment_by_name(spec.experiment or spec.study)  # imports MLflow, opens the store
        except Exception as exc:  # reported by the synchronous open
            log.debug("opening the MLflow store in the background failed: %s", exc)

    def abandon(self) -> None:
        """The study will not run: skip the steps not yet started, wait for the one running."""
        self.abandoned.set()
        if self.thread is not None:
            self.thread.join()

    def for_trials(self) -> Dataset | None:
        """The dataset, once the Optuna storage exists too (MLflow may still be opening)."""
        self.trials_can_start.wait()
        if self.error is not None:
            raise self.error
        return self.dataset

    def result(self) -> tuple[Dataset | None, Any]:
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error
        return self.dataset, self.tracker


class _TrackingOpening:
    """A new study's MLflow side opened on a thread while its first trials run: the MLflow
    import and store (:class:`_Preparation`), then the parent run and its links
    (:func:`_open_tracking`). Until then the tracker queues the trials' runs and counts as
    down, so the loop does not wait for their run ids (their links go through the study's
    attrs, as during an outage). Only for a study with no trial yet: a resumed study's
    repair (:meth:`StudyTracker.reconcile`) runs before any new trial, synchronously.

    :meth:`check` raises the opening's error once it failed (the loop then stops, its trials
    in flight told as lost); :meth:`wait` waits for the end and raises it too.
    """

    def __init__(self, spec: StudySpec, options: RunOptions, coordinator: Coordinator,
                 preparing: _Preparation) -> None:
        self.spec, self.options, self.coordinator, self.preparing = spec, options, coordinator, preparing
        self.error: BaseException | None = None
        self.thread = in_background(self._run, "sweeplab-mlflow-open")

    def _run(self) -> None:
        try:
            _, tracker = self.preparing.result()
            _open_tracking(self.spec, self.options, self.coordinator, tracker)
        except BaseException as exc:  # re-raised on the loop's thread
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def wait(self) -> None:
        self.thread.join()
        self.check()


def warm_driver(storage_url: str | None, tracking_uri: str | None) -> None:
    """Pay, in this process, the one-time costs of a study's driver side, so that a long-lived
    process (the service's supervisor) does not pay them in its first study: the imports of
    the data stack (a small built-in dataset is split and scaled), the end-of-study report,
    Optuna's storage and MLflow, and, for each store given, its opening (the Optuna
    storage's engine, and its schema when new; MLflow's store, which MLflow keeps per URI).
    Creates no study, experiment or run. Raises what opening a store raises."""
    import optuna.storages  # noqa: F401 - the import is the point
    from mlflow.tracking import MlflowClient

    from sweeplab.dashboards import import_report_dependencies
    from sweeplab.objectives.data import load_dataset
    from sweeplab.search.storage import open_storage

    import_report_dependencies()
    load_dataset(task="classification", name="make_classification", options={"n_samples": 60},
                 validation_split=0.2, test_split=0.2, seed=0)
    if storage_url is not None:
        open_storage(storage_url).engine.dispose()
    if tracking_uri is not None:
        from sweeplab.tracking.store_template import seed_sqlite_store

        seed_sqlite_store(tracking_uri)
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)


def shutdown_own_ray(ray_version: str | None = None) -> None:
    """``ray.shutdown()`` of the local Ray this process started, minus a second of waiting.

    Ray stops its processes one by one, each with a SIGTERM and up to 1 s of grace; the
    autoscaler monitor does not exit on SIGTERM and always uses the whole second. A local
    instance's monitor keeps no state, so it is killed first; the rest stops as usual.
    Killing it early takes Ray's private API, so only with the Ray versions it was tested
    with (:mod:`sweeplab.core.compat`; ``ray_version``: a version to check instead of the
    installed one); otherwise this is a plain ``ray.shutdown()``.
    """
    import ray

    if private_ray_shutdown_usable(ray_version):
        try:
            node = ray._private.worker._global_node
            if node is not None and node.head:
                node.kill_monitor(check_alive=False)
        except Exception as exc:  # only an optimization: the normal shutdown stops it anyway
            log.debug("could not stop Ray's monitor early: %s", exc)
    ray.shutdown()


def in_background(target: Callable[[], Any], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def put_objective(fn: Callable[..., Any] | None) -> Any:
    """``fn`` in Ray's object store, once per study (None: None). Raises UsageError when it
    cannot be pickled, before the study is created."""
    if fn is None:
        return None
    import ray

    try:
        return ray.put(fn)
    except Exception as exc:
        check_sendable(fn)  # Ray's own report spans a page; cloudpickle's names the object in one line
        raise _unsendable(fn, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc


def check_sendable(fn: Callable[..., Any] | None) -> None:
    """Raise UsageError when the study's function ``fn`` cannot be pickled (cloudpickle: by value
    when defined in ``__main__``) for its workers, before the study is created."""
    if fn is None:
        return
    import cloudpickle

    try:
        cloudpickle.dumps(fn)
    except Exception as exc:
        raise _unsendable(fn, f"{type(exc).__name__}: {exc}") from exc


def _unsendable(fn: Callable[..., Any], reason: str) -> UsageError:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return UsageError(
        f"objective= {name} cannot be sent to the study's workers: {reason}. A function of a "
        "notebook or of __main__ travels by value with everything it refers to: create what cannot be pickled "
        "(open files, locks, clients, connections) inside the function instead"
    )


def _worth_warming(spec: StudySpec, options: RunOptions) -> bool:
    """Whether warming workers can help: not when the study's function comes with the call
    (nothing to import by name), nor for GPU trials (each runs in a fresh worker process)."""
    return options.objective_fn is None and spec.resources.gpu == 0


def _warm_workers(spec: StudySpec) -> None:
    """Start ``workers`` tasks that import the objective (torch, TensorFlow or the user's
    module) in Ray's worker processes, so the first trials do not pay for it. Fire and
    forget: a failure here surfaces in the first trial instead."""
    import ray

    from sweeplab.search.worker import warm_worker

    try:
        task = ray.remote(max_retries=0)(warm_worker).options(**spec.resources.task_options())
        for _ in range(spec.workers):
            task.remote(spec.objective.framework, getattr(spec.objective, "callable", None))
    except Exception as exc:  # pragma: no cover - warming is only an optimization
        log.debug("could not warm the workers: %s", exc)
