"""The study driver: open the study and its MLflow runs, dispatch trials to Ray, tell.

Flow (DESIGN.md "The way a study flows"): preflight the stores, start or join Ray,
start the coordinator actor (the one writer of the Optuna study), reap trials a dead
driver left RUNNING, open the MLflow parent run, load the dataset once and put it in
Ray's object store once, then keep at most ``workers`` trials in flight until the
study holds ``trials`` finished trials (or ``timeout`` passes).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sweeplab.errors import StorageError, SweeplabError
from sweeplab.search.tickets import INTERRUPTED, LOST, TrialOutcome, TrialRecord, TrialTicket

log = logging.getLogger("sweeplab.search")


class StudyInterrupted(SweeplabError):
    """The user stopped the study (Ctrl-C); it can be resumed with the same command."""

    exit_code = 130


@dataclass
class RunOptions:
    """How to run a study: stores, cluster, and what to show."""

    storage_url: str
    tracking_uri: str
    address: str | None = None
    progress: bool = True
    lease_seconds: float = 60.0
    resume_command: str = ""
    on_record: Callable[[TrialRecord], None] | None = None
    allow_local_stores: bool = False
    package_best: bool = True  # re-fit the best torch/keras trial and log its model + evaluation
    ray_init_kwargs: dict[str, Any] = field(default_factory=dict)


def init_ray(address: str | None, **kwargs: Any) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    # "local" starts a private instance; plain None would attach to whatever cluster
    # `ray start` last left in /tmp/ray, which is not what "no --address" means here.
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
    options.update(kwargs)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StorageError(
            f"cannot connect to the Ray cluster at {address!r}: {exc}. "
            "Check --address / $RAY_ADDRESS (e.g. 127.0.0.1:6379) and that `ray start --head` runs there."
        ) from exc


def load_study_dataset(spec: Any, tracking_uri: str | None = None) -> Any:
    """The spec's dataset, split and scaled (None for python objectives without one).

    With ``objective.init_from`` the source model is downloaded once from ``tracking_uri``
    (None: ``$MLFLOW_TRACKING_URI`` or MLflow's default) and attached to the dataset
    (``Dataset.init_from``, see :mod:`sweeplab.objectives.transfer`), so every trial gets
    it with the arrays; a source with another number of input features is a DataError.
    """
    obj = spec.objective
    if obj.dataset is None:
        return None
    dataset = _load_dataset(spec)
    if getattr(obj, "init_from", None):
        from sweeplab.objectives.transfer import attach_source, fetch_source_model
        from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

        source = fetch_source_model(obj.init_from, resolve_tracking_uri(tracking_uri))
        dataset = attach_source(dataset, source)
    return dataset


def _load_dataset(spec: Any) -> Any:
    from sweeplab.objectives.data import load_dataset

    obj = spec.objective
    ds = obj.dataset
    return load_dataset(
        task=obj.task,
        name=ds.name,
        path=ds.path,
        target=ds.target,
        options=dict(ds.options),
        validation_split=obj.validation_split,
        test_split=obj.test_split,
        seed=spec.seed,
    )


class _Progress:
    """A tqdm bar on stderr: trials done, best so far, ETA."""

    def __init__(self, enabled: bool, total: int, initial: int, study: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=study, unit="trial", file=sys.stderr,
                            dynamic_ncols=True, leave=True)

    def update(self, record: TrialRecord, best: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        post = {"best": f"{best:.4g}" if isinstance(best, float) else str(best), "last": record.state.lower()}
        self.bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_study(spec: Any, options: RunOptions) -> dict[str, Any]:
    """Run (or resume) ``spec``'s study to completion; return its summary.

    Raises StudyInterrupted on Ctrl-C after failing the trials in flight (they are
    retried on resume) and closing the MLflow runs.
    """
    startup = _Phases()  # start-up in phases: summary["startup_s"], logged at INFO
    import ray

    from sweeplab.search import preflight
    from sweeplab.search.coordinator import STUDY_ATTR_TRIALS_TARGET, StudyCoordinator
    from sweeplab.search.worker import execute_trial
    from sweeplab.tracking.mlflow_tracker import StudyTracker

    startup.mark("imports")
    t_start = time.time()
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    preflight.check_ray_address(address)
    preflight.check_tracking_server(options.tracking_uri)
    if address:
        init_ray(address, **options.ray_init_kwargs)
        if not options.allow_local_stores:
            preflight.check_stores_reach_cluster(options.storage_url, options.tracking_uri, address)
    startup.mark("preflight")
    # Starting a local Ray is mostly waiting for its processes; loading the dataset and
    # importing MLflow are this process's own work: do them at the same time.
    preparing = _Preparation(spec, options)
    owns_ray = not ray.is_initialized()  # a Ray this call starts is shut down at its end
    init_ray(address, **options.ray_init_kwargs)
    startup.mark("ray_init")
    _warm_workers(spec)  # workers import the objective's framework while the coordinator starts
    try:
        dataset, tracker = preparing.result()  # bad data raises here, before any store was touched
    except BaseException:
        if owns_ray:
            _shutdown_own_ray()
        raise
    startup.mark("dataset_storage_mlflow_import")
    node_id = ray.get_runtime_context().get_node_id()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    coordinator_cls = ray.remote(num_cpus=0, max_concurrency=64, max_restarts=0)(StudyCoordinator)  # type: ignore[call-overload]
    coordinator = coordinator_cls.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    ).remote(spec.to_dict(), options.storage_url, options.lease_seconds)
    try:
        attrs = ray.get(coordinator.study_attrs.remote())
    except ray.exceptions.RayActorError as exc:
        raise StorageError(f"the study coordinator could not start: {exc}") from exc
    startup.mark("coordinator")

    tracker = tracker or StudyTracker(options.tracking_uri, spec.experiment or spec.study, spec.study)
    experiment_id, parent_run_id = tracker.open(spec.to_dict(), attrs.get("mlflow_parent_run_id"))
    ray.get([
        coordinator.set_study_attr.remote(STUDY_ATTR_TRIALS_TARGET, spec.trials),  # what status shows as "of N"
        coordinator.set_study_attr.remote("mlflow_experiment_id", experiment_id),
        coordinator.set_study_attr.remote("mlflow_parent_run_id", parent_run_id),
        coordinator.set_study_attr.remote("mlflow_tracking_uri", options.tracking_uri),
    ])
    tracker.on_run_created = lambda number, run_id: coordinator.link_run.remote(number, run_id)
    startup.mark("mlflow_open")

    for record in ray.get(coordinator.reap_stale.remote()):
        log.warning("trial %d was left RUNNING by a dead driver: failed%s", record.number,
                    f", retried as trial {record.retried_by}" if record.retried_by is not None else "")
    try:
        repaired = tracker.reconcile(ray.get(coordinator.finished_digest.remote()), spec.metric[0])
        if any(repaired.values()):
            log.warning("MLflow repaired after an earlier crash: %s", repaired)
    except Exception as exc:  # tracking must never stop a study; the repair runs again next time
        log.warning("could not reconcile MLflow with the study (%s); will retry on the next run", exc)

    counts = ray.get(coordinator.counts.remote())
    if dataset is not None:  # what constraints count with; a fine-tuned source's fixed architecture
        source = getattr(dataset, "init_from", None)
        ray.get(coordinator.set_data_shape.remote(dataset.n_features, dataset.n_outputs,
                                                  source.architecture() if source is not None else None))
    dataset_ref = ray.put(dataset)
    startup.mark("resume_checks_dataset_put")
    settings = spec.objective
    metric_names = list(spec.metric)
    cpus, gpus = spec.resources.cpu, spec.resources.gpu
    task = ray.remote(max_retries=0)(execute_trial)
    in_flight: dict[Any, TrialTicket] = {}
    finished = counts["finished"]
    progress = _Progress(options.progress, spec.trials, finished, spec.study)
    deadline = t_start + spec.timeout if spec.timeout else None
    last_renew = time.time()
    best: Any = None
    exhausted = False
    status = "FINISHED"
    unsatisfiable: list[SweeplabError] = []  # the constraints rejected MAX_REJECTIONS trials in a row

    def dispatch() -> None:
        try:
            ticket: TrialTicket = ray.get(coordinator.ask.remote())
        except ray.exceptions.RayTaskError as exc:
            from sweeplab.search.constraints import ConstraintUnsatisfiable

            cause = getattr(exc, "cause", None)
            if not isinstance(cause, ConstraintUnsatisfiable):
                raise
            log.error("%s", cause)
            unsatisfiable.append(cause)
            return
        tags = {"sweeplab.framework": ticket.framework, "sweeplab.attempt": str(ticket.attempt)}
        if ticket.retry_of is not None:
            tags["sweeplab.retry_of"] = str(ticket.retry_of)
        tracker.trial_started(ticket.number, ticket.raw_params, tags)
        ref = task.options(num_cpus=cpus, num_gpus=gpus, scheduling_strategy="SPREAD").remote(
            ticket, dataset_ref, settings, metric_names, coordinator, cpus, gpus
        )
        in_flight[ref] = ticket
        startup.first_submit(ticket.number)

    try:
        while True:
            open_slots = spec.workers - len(in_flight)
            time_left = deadline is None or time.time() < deadline
            while (open_slots > 0 and time_left and not exhausted and not unsatisfiable
                   and finished + len(in_flight) < spec.trials):
                dispatch()
                open_slots -= 1
            if not in_flight:
                break
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=options.lease_seconds / 3)
            if time.time() - last_renew > options.lease_seconds / 3:
                coordinator.renew_leases.remote()
                last_renew = time.time()
            for ref in done:
                ticket = in_flight.pop(ref)
                try:
                    outcome: TrialOutcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    outcome = lost_outcome(ticket.number, exc)
                startup.first_outcome(outcome)
                # Link the trial to its MLflow run before it finishes (a finished trial's attrs
                # are frozen); during a tracking outage do not wait, the link goes to study attrs.
                run_id = tracker.run_id(ticket.number, timeout=0.0 if tracker.writer.retrying else 10.0)
                record = ray.get(coordinator.tell.remote(outcome, run_id))
                exhausted = ray.get(coordinator.is_exhausted.remote()) if spec.sampler.name == "grid" else False
                tracker.trial_finished(record)
                if record.state == "COMPLETE" and outcome.artifacts:
                    tracker.trial_artifacts(record.number, outcome.artifacts)
                if record.retried_by is None:
                    finished += 1
                if record.values and record.state == "COMPLETE" and not spec.multi_objective:
                    value = record.values[0]
                    better = best is None or (value > best if spec.direction[0] == "maximize" else value < best)
                    best = value if better else best
                progress.update(record, best)
                if options.on_record is not None:
                    options.on_record(record)
    except KeyboardInterrupt:
        status = "KILLED"
        for ref, ticket in list(in_flight.items()):
            ray.cancel(ref, force=True)
            record = ray.get(coordinator.tell.remote(
                TrialOutcome(ticket.number, INTERRUPTED, {}, reason="lost: interrupted by the user (Ctrl-C)")))
            tracker.trial_finished(record)
        in_flight.clear()
    finally:
        progress.close()
    if unsatisfiable and status == "FINISHED":
        status = "FAILED"

    summary = ray.get(coordinator.summary.remote())
    if summary.get("best_trial") is not None and not summary.get("best_run_id"):
        summary["best_run_id"] = tracker.run_id(summary["best_trial"], timeout=30.0)
    if status == "FINISHED" and options.package_best:
        from sweeplab.tracking.packaging import package_best_trial

        summary["best_model"] = package_best_trial(spec, summary, storage_url=options.storage_url,
                                                   dataset_ref=dataset_ref, tracker=tracker)
    summary["elapsed_s"] = round(time.time() - t_start, 3)
    summary["startup_s"] = startup.phases
    # Once every trial's run is created and linked (the links go through the coordinator),
    # Ray is no longer needed: a Ray this call started shuts down (waiting for its
    # processes to exit) while the report is written and the parent run closed.
    stopping = None
    if tracker.writer.wait_idle(timeout=30.0):
        ray.kill(coordinator)
        if owns_ray:
            stopping = _in_background(_shutdown_own_ray, "sweeplab-ray-shutdown")
    html = _write_report(spec, summary, options.storage_url)
    delivered = tracker.close(summary, status=status, html_report=html)
    summary["mlflow_requests"] = tracker.writer.requests
    summary["mlflow_delivered"] = delivered
    summary["storage"] = options.storage_url
    summary["tracking_uri"] = options.tracking_uri
    if stopping is None:
        ray.kill(coordinator)
    else:
        stopping.join()
    if unsatisfiable:
        raise unsatisfiable[0]
    if status == "KILLED":
        raise StudyInterrupted(
            f"study {spec.study!r} interrupted after {summary['n_trials']} of {spec.trials} trials; "
            f"nothing is lost. Resume with: {options.resume_command or 'the same sweeplab run command'}"
        )
    return summary


def lost_outcome(number: int, exc: BaseException) -> TrialOutcome:
    """The outcome of a trial whose Ray task failed with ``exc`` instead of returning.

    A lost node (or its raylet, or an object it held) is the infrastructure's doing:
    INTERRUPTED, retried without spending ``max_retries``. Anything else means the
    trial's own worker process died while its node lived (it killed itself, ran out of
    memory, crashed in native code): LOST, which spends one retry.
    """
    import ray

    text = f"{type(exc).__name__}: {str(exc)[:500]}"
    infrastructure = (ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError,
                      ray.exceptions.ObjectLostError)
    if isinstance(exc, infrastructure):
        return TrialOutcome(number, INTERRUPTED, {}, reason=f"lost: its Ray node was lost ({text})")
    return TrialOutcome(number, LOST, {}, reason=f"lost: its worker died ({text})")


class _Preparation:
    """The study's own start-up work, on a thread while Ray starts.

    In order: load the dataset (a DataError here touches no store), check that the
    constraints can hold, create or open the Optuna storage (its schema exists before
    any worker starts), then import MLflow and open its store. :meth:`result` waits and
    returns ``(dataset, tracker)``, re-raising the first error. The tracker is None when
    opening MLflow failed: the caller builds it again so that the failure surfaces
    where it always did (``StudyTracker.open``).
    """

    def __init__(self, spec: Any, options: RunOptions) -> None:
        self.spec, self.options = spec, options
        self.dataset: Any = None
        self.tracker: Any = None
        self.error: BaseException | None = None
        self.thread = _in_background(self._run, "sweeplab-prepare")

    def _run(self) -> None:
        spec, options = self.spec, self.options
        try:
            from sweeplab.search.storage import open_storage

            self.dataset = load_study_dataset(spec, options.tracking_uri)
            if self.dataset is not None and spec.constraints:
                from sweeplab.search.constraints import check_satisfiable

                source = getattr(self.dataset, "init_from", None)
                check_satisfiable(spec, self.dataset.n_features, self.dataset.n_outputs,
                                  source.architecture() if source is not None else None)
            open_storage(options.storage_url)
        except BaseException as exc:  # re-raised on the caller's thread
            self.error = exc
            return
        try:
            from sweeplab.tracking.mlflow_tracker import StudyTracker

            tracker = StudyTracker(options.tracking_uri, spec.experiment or spec.study, spec.study)
            tracker.client.get_experiment_by_name(spec.experiment or spec.study)  # opens the store
            self.tracker = tracker
        except Exception as exc:  # reported by the synchronous open
            log.debug("opening the MLflow store in the background failed: %s", exc)

    def result(self) -> tuple[Any, Any]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.dataset, self.tracker


def _shutdown_own_ray() -> None:
    """``ray.shutdown()`` of the local Ray this process started, minus a second of waiting.

    Ray stops its processes one by one, each with a SIGTERM and up to 1 s of grace; the
    autoscaler monitor does not exit on SIGTERM and always uses the whole second. A local
    instance's monitor keeps no state, so it is killed first; the rest stops as usual.
    """
    import ray

    try:
        node = ray._private.worker._global_node
        if node is not None and node.head:
            node.kill_monitor(check_alive=False)
    except Exception as exc:  # only an optimization: the normal shutdown stops it anyway
        log.debug("could not stop Ray's monitor early: %s", exc)
    ray.shutdown()


def _in_background(target: Callable[[], Any], name: str) -> Any:
    import threading

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _warm_workers(spec: Any) -> None:
    """Start ``workers`` tasks that import the objective (torch, TensorFlow or the user's
    module) in Ray's worker processes, so the first trials do not pay for it. Fire and
    forget: a failure here surfaces in the first trial instead."""
    import ray

    from sweeplab.search.worker import warm_worker

    try:
        task = ray.remote(max_retries=0)(warm_worker).options(num_cpus=spec.resources.cpu,
                                                               num_gpus=spec.resources.gpu)
        for _ in range(spec.workers):
            task.remote(spec.objective.framework, getattr(spec.objective, "callable", None))
    except Exception as exc:  # pragma: no cover - warming is only an optimization
        log.debug("could not warm the workers: %s", exc)


class _Phases:
    """Seconds spent in each start-up phase, up to the first trial's start on its worker.

    ``first_dispatch``: the first ask and task submission; ``first_trial_start``: from that
    submission to the objective's start on the worker (worker process start, imports, the
    dataset fetch); ``total``: from entering ``run_study`` to the first trial's start.
    """

    def __init__(self) -> None:
        self.t0 = self.last = time.time()
        self.phases: dict[str, float] = {}
        self.submitted: tuple[int, float] | None = None
        self.done = False

    def mark(self, name: str) -> None:
        now = time.time()
        self.phases[name] = round(now - self.last, 4)
        self.last = now

    def first_submit(self, number: int) -> None:
        if self.submitted is None and not self.done:
            self.mark("first_dispatch")
            self.submitted = (number, self.last)

    def first_outcome(self, outcome: Any) -> None:
        if self.done or self.submitted is None:
            return
        self.done = True
        started = float(getattr(outcome, "started_at", 0.0) or 0.0)
        if started > 0:
            self.phases["first_trial_start"] = round(max(0.0, started - self.submitted[1]), 4)
            self.phases["total"] = round(started - self.t0, 4)
        log.info("start-up: %s", ", ".join(f"{k} {v:.2f}s" for k, v in self.phases.items()))


def _write_report(spec: Any, summary: dict[str, Any], storage_url: str) -> str | None:
    """Write the study's HTML dashboard to a private temp file for the parent run, if available."""
    try:
        from sweeplab.dashboards import write_study_report  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        return str(write_study_report(spec.study, summary, storage_url=storage_url))
    except Exception as exc:  # a report must never fail a study
        log.warning("could not write the study report: %s", exc)
        return None
