"""The one writer of the Optuna study.

Workers never open the Optuna storage. The :class:`StudyCoordinator` (run as a Ray
actor with ``num_cpus=0`` on the driver's node) does every ask, report,
should-prune and tell, serialised by one lock. Pruning therefore goes worker ->
coordinator -> decision back, and a cluster's database load does not grow with the
number of workers.

Leases: every trial this coordinator hands out carries user attrs
``sweeplab.lease_holder`` (``host:pid:start``) and ``sweeplab.lease_expires`` (epoch
seconds), renewed by :meth:`renew_leases`. A RUNNING trial whose holder is a dead
process on this host, or whose lease expired, is stale: :meth:`reap_stale` fails it
with the reason and enqueues a retry.

Whose fault a loss is decides what it spends. A trial whose own worker process died
while its driver lived (``LOST``) spends one of its lineage's ``max_retries``. A trial
cut short by the infrastructure (``INTERRUPTED``: its driver was killed or stopped, its
lease expired, its Ray node was lost) spends nothing of it: it is retried up to the
separate, larger :data:`MAX_INTERRUPTIONS`, which only stops the rare trial that takes
its driver or node down with it.

Pruning. A single-objective study's reports go to Optuna (``trial.report``) and its
pruner decides. A two-objective study with ``mo_successive_halving`` is pruned here: at
each rung the trial's vector of the study's metrics is recorded (trial attr
``sweeplab.mo_rungs``) and ranked against the vectors other trials recorded at that rung
(:class:`~sweeplab.core.pareto.ParetoHalving`). In a ``deterministic`` study each
decision about trial ``n`` reads only the trials that were finished when ``n`` was asked,
plus ``n`` itself (:mod:`sweeplab.search.views`), so it does not depend on what else
happens to be running or finished by the time ``n`` reports; otherwise it reads every
trial, running ones included, as Optuna's pruners do.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.core.keys import (
    ATTR_ATTEMPT,
    ATTR_CV_FOLDS,
    ATTR_CV_STD,
    ATTR_GRID_ID,
    ATTR_INTERRUPTIONS,
    ATTR_LEASE_EXPIRES,
    ATTR_LEASE_HOLDER,
    ATTR_LOGGED_MODEL,
    ATTR_METRICS,
    ATTR_MO_RUNGS,
    ATTR_N_PARAMS,
    ATTR_NODE,
    ATTR_OWN_FAILURES,
    ATTR_PRUNED_EPOCH,
    ATTR_REASON,
    ATTR_REJECTED,
    ATTR_RETRY_OF,
    ATTR_ROOT,
    ATTR_RUN_ID,
    METRIC_N_FOLDS,
    METRIC_STD_SUFFIX,
    OPTUNA_ENQUEUED_PARAMS,
    STUDY_ATTR_RETRIES,
    STUDY_ATTR_RUN_IDS,
    STUDY_ATTR_SPEC,
    STUDY_ATTR_UID,
)
from sweeplab.core.pareto import ParetoHalving
from sweeplab.core.records import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    LOSSES,
    PRUNED,
    StudySummary,
    TrialDigest,
    TrialOutcome,
    TrialRecord,
    TrialTicket,
)
from sweeplab.objectives.trial import MODEL_ARTIFACT
from sweeplab.search.checkpoints import CheckpointStore, checkpoint_root
from sweeplab.search.constraints import (
    MAX_REJECTIONS,
    ConstraintUnsatisfiable,
    check_satisfiable,
    evaluate_constraints,
    unsatisfiable_message,
)
from sweeplab.search.storage import StorageOptions, StudyStorage

if TYPE_CHECKING:
    import optuna

    from sweeplab.spec import StudySpec

MAX_INTERRUPTIONS = 10
"""How often one lineage may be cut short by its driver or node before it stops being
retried. Driver restarts are not the trial's fault, so this bound is far above any
``max_retries``: it only stops a trial that keeps taking its driver down with it."""


log = logging.getLogger("sweeplab.search")


def trial_seed(study_seed: int, root_number: int) -> int:
    """Seed of a trial: a fixed mix of the study seed and the lineage's first number."""
    return (study_seed * 1_000_003 + root_number * 7_919 + 17) % (2**31 - 1)


def ticket_for_trial(spec: StudySpec, trial: optuna.trial.FrozenTrial, seed: int | None = None) -> TrialTicket:
    """The ticket that trains Optuna ``trial`` (a FrozenTrial of ``spec``'s study) again.

    Params are resolved from the trial's recorded params like :meth:`StudyCoordinator.ask`
    does; the seed is the trial's own (from the lineage root, so a retried trial keeps
    its original's seed) unless ``seed`` is given; ``attempt`` and ``retry_of`` are the
    trial's. What re-trains a stored trial (packaging, promotion, the pruning audit) and
    what fails a stale one starts here.

    A trial claimed from the queue whose driver died before its params were written (the
    claim commits at once, the params with the lease at the end of ``ask``'s batch) has
    no params yet: its enqueued ones (Optuna's ``fixed_params`` system attr) are what it
    was about to run, so a retry of it repeats them.
    """
    raw = dict(trial.params) or dict(trial.system_attrs.get(OPTUNA_ENQUEUED_PARAMS, {}))
    params = spec.space.resolve(raw)
    attrs = trial.user_attrs
    root = int(attrs.get(ATTR_ROOT, trial.number))
    return TrialTicket(
        number=int(trial.number),
        raw_params=raw,
        params=params,
        seed=trial_seed(spec.seed, root) if seed is None else int(seed),
        framework=str(params.get("framework", spec.objective.framework)),
        attempt=int(attrs.get(ATTR_ATTEMPT, 0)),
        retry_of=attrs.get(ATTR_RETRY_OF),
    )


def holder_id() -> str:
    """Identity of this process for leases: ``host:pid:start-time``."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


def _holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer runs."""
    try:
        host, pid_s, _ = holder.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


DB_RETRIES = 6


def is_transient_db_error(exc: BaseException) -> bool:
    """True for a dropped or refused database connection (server restart, killed backend)."""
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError
    except ImportError:  # pragma: no cover
        return False
    seen: BaseException | None = exc
    for _ in range(8):  # Optuna wraps driver errors in StorageInternalError: walk the chain
        if seen is None:
            return False
        if isinstance(seen, OperationalError) or (isinstance(seen, DBAPIError) and seen.connection_invalidated):
            return True
        text = str(seen).lower()
        if any(w in text for w in ("server closed the connection", "terminating connection", "connection refused",
                                   "could not connect", "connection is closed", "ssl syscall", "database is locked")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _with_db_retry(method: Any) -> Any:
    """Retry a coordinator operation when the database connection drops.

    Every wrapped operation is safe to repeat: tell skips finished trials, reports
    overwrite the same step, and an ``ask`` interrupted after Optuna created its trial
    fails that orphan (recorded as superseded, so it does not count toward ``trials``)
    before asking again.
    """
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        delay = 0.5
        for attempt in range(DB_RETRIES):
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if attempt == DB_RETRIES - 1 or not is_transient_db_error(exc):
                    raise
                log.warning("database error in %s (%s); retrying in %.1fs", method.__name__,
                            str(exc).splitlines()[0][:200], delay)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
                if method.__name__ == "ask":
                    self._fail_orphans()
        raise AssertionError("unreachable")

    return wrapper


class StudyCoordinator:
    """Owns one Optuna study: creates or loads it, asks, records reports, tells.

    Thread-safe: every method takes the same lock, so a threaded Ray actor may serve
    reports from many workers while the driver asks and tells.
    """

    def __init__(self, spec_dict: dict[str, Any], storage_url: str, lease_seconds: float = 60.0, *,
                 storage_options: StorageOptions | None = None, checkpoint_dir: str | None = None,
                 study_storage: StudyStorage | None = None) -> None:
        """``storage_options``: the held storage and SQLite's WAL mode (default: both, where
        the installed Optuna was tested with the held storage; see :class:`StorageOptions`).
        ``checkpoint_dir``: where trial checkpoints are kept (default:
        :func:`~sweeplab.search.checkpoints.checkpoint_root` of ``storage_url``, against this
        process's working directory; the driver passes its own). ``study_storage``: a storage
        already open to keep the study in instead of ``storage_url``'s (a simulated study keeps
        it in memory, :mod:`sweeplab.search.simulated`)."""
        import optuna

        from sweeplab.spec import parse_spec

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # the driver validated this spec; a python study's function may come with the run (sweeplab.run)
        self.spec = parse_spec(spec_dict, source=spec_dict.get("study", "spec"), function_objective=True)
        self.lease_seconds = lease_seconds
        self.holder = holder_id()
        self._lock = threading.RLock()
        self.storage_options = (storage_options or StorageOptions()).resolved()
        self._given_storage = study_storage
        self.study = self._open_study(storage_url)
        self.exhausted = False  # True once a grid sampler has covered its grid
        self._live: dict[int, Any] = {}  # number -> optuna.Trial handed out by this coordinator
        self._tickets: dict[int, TrialTicket] = {}
        self._history: dict[int, list[tuple[int, float, dict[str, float]]]] = {}
        # epochs sent by report_queued, not recorded yet (appended without the lock: deque is thread-safe)
        self._queued: deque[tuple[int, int, dict[str, float], float]] = deque()
        self._n_features: int | None = None  # the dataset's widths, for constraints (set_data_shape)
        self._n_outputs: int | None = None
        self._fixed_params: dict[str, Any] = {}  # e.g. a fine-tuned source model's architecture
        self.max_rejections = MAX_REJECTIONS  # constraint rejections in a row before ask gives up
        self._roots: dict[int, int] = {}  # number -> its lineage's first number, for trials handed out
        self._checkpoints = CheckpointStore(Path(checkpoint_dir) if checkpoint_dir else checkpoint_root(storage_url),
                                            self.spec.study, str(self.study.user_attrs.get(STUDY_ATTR_UID, "")))
        self._checkpoint_lock = threading.Lock()
        # deterministic studies: number -> the trials finished when it was asked, and the view of them
        self._visible: dict[int, frozenset[int]] = {}
        self._views: dict[int, Any] = {}

    @_with_db_retry
    def _open_study(self, storage_url: str) -> Any:
        """Create or load the study (recording the spec once); retried like every operation."""
        import optuna

        from sweeplab.registry.search import SAMPLERS
        from sweeplab.search.samplers import build_pruner, build_sampler, sampler_factory
        from sweeplab.search.seeding import trial_seeded_sampler
        from sweeplab.search.storage import open_study_storage

        self._storage = (self._given_storage if self._given_storage is not None
                         else open_study_storage(storage_url, self.storage_options))
        kwargs: dict[str, Any] = {}
        if self.spec.multi_objective:
            kwargs["directions"] = list(self.spec.direction)
        else:
            kwargs["direction"] = self.spec.direction[0]
        pruner = build_pruner(self.spec)
        # Optuna cannot prune a multi-objective study: the coordinator applies this one itself.
        self.pareto: ParetoHalving | None = pruner if isinstance(pruner, ParetoHalving) else None
        if self.pareto is not None:
            pruner = optuna.pruners.NopPruner()
        study = optuna.create_study(
            # With the held storage, trials this coordinator holds are kept in memory (it is their
            # one writer), so a report's pruning decision or an ask does not re-read them.
            storage=self._storage.optuna_storage,
            study_name=self.spec.study,
            # Seeded per trial number, so a resumed study continues instead of repeating itself.
            sampler=(build_sampler(self.spec) if SAMPLERS[self.spec.sampler.name].seeded_once else
                     trial_seeded_sampler(sampler_factory(self.spec), self.spec.seed)),
            pruner=pruner,
            load_if_exists=True,
            **kwargs,
        )
        if STUDY_ATTR_SPEC not in study.user_attrs:
            study.set_user_attr(STUDY_ATTR_SPEC, self.spec.to_dict())
        if STUDY_ATTR_UID not in study.user_attrs:
            study.set_user_attr(STUDY_ATTR_UID, uuid.uuid4().hex)
        return study

    # ----------------------------------------------------------------- queries
    @_with_db_retry
    def counts(self) -> dict[str, int]:
        """Trial counts: ``finished`` counts toward ``trials`` (retried attempts do not)."""
        with self._lock:
            trials = self.study.get_trials(deepcopy=False)
            retried = set(self.study.user_attrs.get(STUDY_ATTR_RETRIES, {}))
        return count_states(trials, retried)

    @_with_db_retry
    def set_study_attr(self, key: str, value: Any) -> None:
        with self._lock:
            self.study.set_user_attr(key, value)

    @_with_db_retry
    def study_attrs(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.study.user_attrs)

    def set_data_shape(self, n_features: int, n_outputs: int, fixed_params: dict[str, Any] | None = None) -> None:
        """Tell the coordinator the dataset's input and output widths (what ``constraints`` count with).

        ``fixed_params`` are merged over every trial's resolved params (they win): the
        architecture of an ``init_from`` source model (``hidden_units``, ``batch_norm``,
        ``activation``), so tickets, constraints and MLflow show the network that trains.
        Raises :class:`ConstraintUnsatisfiable` when no architecture of the space can hold
        the constraints.
        """
        with self._lock:
            self._n_features, self._n_outputs = int(n_features), int(n_outputs)
            self._fixed_params = dict(fixed_params or {})
            check_satisfiable(self.spec, self._n_features, self._n_outputs, self._fixed_params)

    # ----------------------------------------------------------------- ask
    @_with_db_retry
    def ask(self) -> TrialTicket:
        """Ask Optuna for the next trial (an enqueued retry first) and lease it.

        A trial that breaks the spec's ``constraints`` is told PRUNED at once (see
        :mod:`sweeplab.search.constraints`) and the next one is asked, at most
        ``max_rejections`` times in a row; then :class:`ConstraintUnsatisfiable` is raised.
        """
        with self._lock, self._storage.batch():  # one transaction for the trial's params and lease
            self._record_queued()
            last_reason = ""
            for _ in range(self.max_rejections):
                trial = self.study.ask()
                raw = self.spec.space.suggest(trial)
                params = {**self.spec.space.resolve(raw), **self._fixed_params}
                reason = self._check_constraints(trial, params)
                if reason is None:
                    break
                last_reason = reason
            else:
                raise ConstraintUnsatisfiable(
                    unsatisfiable_message(self.spec.study, self.spec.constraints, self.max_rejections, last_reason)
                )
            number = trial.number
            attrs = trial.user_attrs
            retry_of = attrs.get(ATTR_RETRY_OF)
            root = int(attrs.get(ATTR_ROOT, number))
            attempt = int(attrs.get(ATTR_ATTEMPT, 0))
            if ATTR_ROOT not in attrs:
                trial.set_user_attr(ATTR_ROOT, root)
            if ATTR_GRID_ID in attrs:
                # A retry re-runs its original's grid point; GridSampler needs to know which.
                for key, value in attrs[ATTR_GRID_ID].items():
                    self._storage.set_trial_system_attr(trial._trial_id, key, value)
            self._lease(trial)
            framework = str(params.get("framework", self.spec.objective.framework))
            ticket = TrialTicket(
                number=number,
                raw_params=dict(raw),
                params=params,
                seed=trial_seed(self.spec.seed, root),
                framework=framework,
                attempt=attempt,
                retry_of=retry_of,
                prunable=self.spec.pruner.name != "none",
            )
            if self.spec.deterministic:
                self._visible[number] = frozenset(
                    t.number for t in self.study.get_trials(deepcopy=False) if t.state.is_finished())
            self._live[number] = trial
            self._tickets[number] = ticket
            self._history[number] = []
            self._roots[number] = root
            return ticket

    def _check_constraints(self, trial: Any, params: dict[str, Any]) -> str | None:
        """Record the constraint values of an asked trial; tell it PRUNED and return why when it breaks one."""
        from optuna.trial import TrialState

        if not self.spec.constraints:
            return None
        values, n_params, reason = evaluate_constraints(self.spec.constraints, params, self._n_features,
                                                        self._n_outputs)
        if n_params is not None:
            trial.set_user_attr(ATTR_N_PARAMS, n_params)
        for name, value in values.items():
            trial.set_constraint(name, value)  # what Optuna's constraint-aware samplers read
        if reason is None:
            return None
        trial.set_user_attr(ATTR_REJECTED, True)
        trial.set_user_attr(ATTR_REASON, reason)
        self._tell(trial, state=TrialState.PRUNED)
        return reason

    def _lease(self, trial: Any) -> None:
        trial.set_user_attr(ATTR_LEASE_HOLDER, self.holder)
        trial.set_user_attr(ATTR_LEASE_EXPIRES, time.time() + self.lease_seconds)

    @_with_db_retry
    def renew_leases(self) -> int:
        """Extend the lease of every trial in flight; returns how many were renewed."""
        with self._lock:
            self._record_queued()
            for trial in self._live.values():
                trial.set_user_attr(ATTR_LEASE_EXPIRES, time.time() + self.lease_seconds)
            return len(self._live)

    # ----------------------------------------------------------------- report
    @_with_db_retry
    def report(self, number: int, epoch: int, metrics: dict[str, float], at: float | None = None) -> bool:
        """Record one epoch of trial ``number`` (ended at ``at``, epoch seconds; default:
        now); return True when the trial should stop."""
        with self._lock:
            self._record_queued()
            return self._record(number, epoch, metrics, time.time() if at is None else float(at))

    def report_queued(self, number: int, epoch: int, metrics: dict[str, float], at: float | None = None) -> None:
        """Record one epoch of trial ``number`` whose pruning decision nobody waits for (a study
        whose pruner never prunes): at once when the coordinator is free, else queued for the
        next call that holds it. A worker's end-of-trial flush then waits only for the
        queueing, not for an ask or a tell of the driver; every other call records the queue
        first, so a trial's epochs are recorded before it is told."""
        self._queued.append((number, epoch, dict(metrics), time.time() if at is None else float(at)))
        if self._lock.acquire(blocking=False):
            try:
                self._record_queued()
            except Exception as exc:  # kept queued: the next call that holds the lock records it (or raises)
                log.debug("a queued report waits for the next coordinator call: %s", exc)
            finally:
                self._lock.release()

    def _record_queued(self) -> None:
        """Record the queued epochs, in order (the lock held); one that raises stays first in the queue."""
        while self._queued:
            number, epoch, metrics, at = self._queued[0]
            self._record(number, epoch, metrics, at)
            self._queued.popleft()

    def _record(self, number: int, epoch: int, metrics: dict[str, float], at: float) -> bool:
        """Record one epoch (the lock held); True when the trial should stop."""
        trial = self._live.get(number)
        if trial is None:
            return True  # the trial was reaped or told: its worker must stop
        history = self._history[number]
        entry = (epoch, at, dict(metrics))
        if not history or history[-1] != entry:  # a queued epoch recorded again after a failed write
            history.append(entry)
        if self.spec.multi_objective:
            return self.pareto is not None and self._pareto_prunes(trial, number, epoch, metrics)
        value = metrics.get(self.spec.metric[0])
        if value is None or not math.isfinite(value):
            return False
        trial.report(float(value), step=epoch)
        if not self.spec.deterministic:
            return bool(trial.should_prune())
        frozen = self._storage.optuna_storage.get_trial(trial._trial_id)
        return bool(self.study.pruner.prune(self._view(number), frozen))

    def _view(self, number: int) -> Any:
        """The study as trial ``number``'s pruning decisions see it in a deterministic study."""
        from sweeplab.search.views import study_view

        view = self._views.get(number)
        if view is None:
            view = study_view(self.study, self._storage.optuna_storage, self._visible[number] | {number})
            self._views[number] = view
        return view

    def _pareto_prunes(self, trial: Any, number: int, epoch: int, metrics: dict[str, float]) -> bool:
        """Record trial ``number``'s vector at every rung ``epoch`` reaches; True when a rung prunes it.

        An epoch that lacks one of the study's metrics decides nothing (the next one that has
        them reaches the rung); a non-finite value prunes, as Optuna's successive halving does.
        """
        pareto = self.pareto
        assert pareto is not None
        if any(m not in metrics for m in self.spec.metric):
            return False
        vector = [float(metrics[m]) for m in self.spec.metric]
        rungs = dict(trial.user_attrs.get(ATTR_MO_RUNGS, {}))
        rung = len(rungs)
        if epoch < pareto.rung_step(rung):
            return False
        if not all(math.isfinite(v) for v in vector):
            return True
        maximize = [d == "maximize" for d in self.spec.direction]
        while epoch >= pareto.rung_step(rung):
            others = self._rung_vectors(number, rung)
            rungs[str(rung)] = vector
            trial.set_user_attr(ATTR_MO_RUNGS, rungs)
            if not pareto.keep(vector, others, maximize):
                return True
            rung += 1
        return False

    def _rung_vectors(self, number: int, rung: int) -> list[list[float]]:
        """The vectors other trials recorded at ``rung``: of the trials trial ``number`` may see."""
        visible = self._visible.get(number) if self.spec.deterministic else None
        key = str(rung)
        out = []
        for t in self.study.get_trials(deepcopy=False):
            if t.number == number or (visible is not None and t.number not in visible):
                continue
            recorded = t.user_attrs.get(ATTR_MO_RUNGS, {})
            if key in recorded:
                out.append([float(v) for v in recorded[key]])
        return out

    # ----------------------------------------------------------------- checkpoints
    def save_checkpoint(self, number: int, data: bytes) -> bool:
        """Keep ``data`` as the checkpoint of trial ``number``'s lineage (replacing the last);
        False when the trial is no longer in flight here (its worker must stop)."""
        with self._lock:
            root = self._roots.get(number)
        if root is None:
            return False
        with self._checkpoint_lock:
            self._checkpoints.save(root, data)
        return True

    def load_checkpoint(self, number: int) -> bytes | None:
        """The last checkpoint of trial ``number``'s lineage (saved by an earlier attempt), or None."""
        with self._lock:
            root = self._roots.get(number)
        if root is None:
            return None
        with self._checkpoint_lock:
            return self._checkpoints.load(root)

    def _drop_checkpoint(self, root: int) -> None:
        try:
            with self._checkpoint_lock:
                self._checkpoints.drop(root)
        except OSError as exc:  # a leftover file must not fail a tell
            log.warning("could not delete the checkpoint of trial lineage %d: %s", root, exc)

    # ----------------------------------------------------------------- tell
    @_with_db_retry
    def tell(self, outcome: TrialOutcome, run_id: str | None = None) -> TrialRecord:
        """Finish the trial of ``outcome`` in Optuna and return its record.

        COMPLETE needs finite values for every study metric, otherwise the trial
        FAILs with the reason. LOST (its worker died) and INTERRUPTED (its driver or node
        went away) FAIL and enqueue a retry while the lineage has retries of that kind
        left (see the module docstring).
        """
        from optuna.trial import TrialState

        with self._lock, self._storage.batch():  # the attrs in one transaction, before the state
            self._record_queued()  # the trial's epochs, which its worker sent before its outcome
            number = outcome.number
            # Popped only once told: a retry after a dropped database connection finds them again.
            trial = self._live[number]
            ticket = self._tickets[number]
            # Reports that did not wait for an answer may have been recorded out of order.
            history = sorted(self._history.get(number, []), key=lambda entry: entry[0])
            state, reason = outcome.state, outcome.reason
            values: list[float] | None = None
            if state == COMPLETE:
                try:
                    values = [float(outcome.metrics[m]) for m in self.spec.metric]
                    bad = [m for m, v in zip(self.spec.metric, values, strict=True) if not math.isfinite(v)]
                    if bad:
                        raise ValueError(f"metric {bad[0]!r} is {outcome.metrics[bad[0]]} (not finite)")
                except (KeyError, ValueError, TypeError) as exc:
                    state, reason, values = FAILED, f"bad objective result: {exc}", None
            safe_metrics = {k: v for k, v in outcome.metrics.items() if math.isfinite(v)}
            stored = self._storage.finished_copy(trial._trial_id)
            if stored is None:
                if state in LOSSES:
                    reason = self._loss_reason(reason or "lost", trial.user_attrs, state)
                self._write_outcome(trial, outcome, state, reason, values, safe_metrics, run_id)
                retried_by = (self._enqueue_retry(number, trial.user_attrs, ticket,
                                                  self._storage.get_trial_system_attrs(trial._trial_id), state)
                              if state in LOSSES else None)
            else:
                # Already finished: a retried tell whose first attempt committed the state
                # before the connection dropped, or a trial another driver reaped meanwhile.
                # Nothing of it changes; the record says what is stored.
                if stored.state == TrialState.COMPLETE:
                    state, values = COMPLETE, list(stored.values)
                elif stored.state == TrialState.PRUNED:
                    state, values = PRUNED, None
                elif state not in LOSSES:
                    state, values = FAILED, None
                retried_by = None
                if state in LOSSES:
                    links = self.study.user_attrs.get(STUDY_ATTR_RETRIES, {})
                    retried_by = (links[str(number)] if str(number) in links else
                                  self._enqueue_retry(number, stored.user_attrs, ticket, stored.system_attrs, state))
            self._live.pop(number, None)
            self._tickets.pop(number, None)
            self._history.pop(number, None)
            self._visible.pop(number, None)
            self._views.pop(number, None)
            root = self._roots.pop(number, number)
            if retried_by is None:  # the lineage is over: its checkpoint is of no more use
                self._drop_checkpoint(root)
            return TrialRecord(
                number=number,
                state=COMPLETE if state == COMPLETE else PRUNED if state == PRUNED else FAILED,
                values=values,
                params=ticket.params,
                raw_params=ticket.raw_params,
                metrics=safe_metrics,
                history=history,
                reason=reason,
                pruned_epoch=outcome.pruned_epoch,
                node=outcome.node,
                duration=outcome.duration,
                attempt=ticket.attempt,
                retry_of=ticket.retry_of,
                retried_by=retried_by,
            )

    def _write_outcome(self, trial: Any, outcome: TrialOutcome, state: str, reason: str | None,
                       values: list[float] | None, safe_metrics: dict[str, float], run_id: str | None) -> None:
        """Record the outcome's attrs on the (still running) trial, then finish it in Optuna."""
        from optuna.trial import TrialState

        if run_id and ATTR_RUN_ID not in trial.user_attrs:
            trial.set_user_attr(ATTR_RUN_ID, run_id)
        trial.set_user_attr(ATTR_METRICS, safe_metrics)
        if METRIC_N_FOLDS in safe_metrics:  # a cross-validated trial: its fold count and spread, by name
            trial.set_user_attr(ATTR_CV_FOLDS, int(safe_metrics[METRIC_N_FOLDS]))
            trial.set_user_attr(ATTR_CV_STD, {name[: -len(METRIC_STD_SUFFIX)]: value for name, value
                                              in safe_metrics.items() if name.endswith(METRIC_STD_SUFFIX)})
        if outcome.node:
            trial.set_user_attr(ATTR_NODE, outcome.node)
        if reason:
            trial.set_user_attr(ATTR_REASON, reason[:2000])
        if outcome.pruned_epoch is not None:
            trial.set_user_attr(ATTR_PRUNED_EPOCH, outcome.pruned_epoch)
        if f"{MODEL_ARTIFACT}/MLmodel" in outcome.artifacts:  # the driver uploads it into the trial's run
            trial.set_user_attr(ATTR_LOGGED_MODEL, MODEL_ARTIFACT)
        if state == COMPLETE:
            self._tell(trial, values=values)
        elif state == PRUNED:
            self._tell(trial, state=TrialState.PRUNED)
        else:
            self._tell(trial, state=TrialState.FAIL)

    # ----------------------------------------------------------------- leases
    @_with_db_retry
    def reap_stale(self) -> list[TrialRecord]:
        """Fail every RUNNING trial no live worker holds, and enqueue its retry.

        A trial is stale when its lease holder is a dead process on this host, or its
        lease expired. Trials held by this coordinator are never stale. Returns the
        records of the trials this call failed (another driver racing on the same trial
        makes the second transition a no-op).
        """
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        reaped: list[TrialRecord] = []
        with self._lock:
            running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            now = time.time()
            for frozen in running:
                if frozen.number in self._live:
                    continue
                holder = str(frozen.user_attrs.get(ATTR_LEASE_HOLDER, ""))
                expires = float(frozen.user_attrs.get(ATTR_LEASE_EXPIRES, 0.0))
                dead = _holder_is_dead(holder) if holder else True
                if not dead and expires > now:
                    continue
                why = "its driver process died" if dead else f"its lease expired {now - expires:.0f}s ago"
                reason = self._loss_reason(f"lost: trial was RUNNING but {why} (holder {holder or 'unknown'})",
                                           frozen.user_attrs, INTERRUPTED)
                trial_id = frozen._trial_id
                ticket = ticket_for_trial(self.spec, frozen)
                try:
                    self._storage.set_trial_user_attr(trial_id, ATTR_REASON, reason)
                    # The state transition is the claim: only one reaper can win it.
                    if not self._storage.set_trial_state_values(trial_id, TrialState.FAIL):
                        continue
                except UpdateFinishedTrialError:
                    continue
                retried_by = self._enqueue_retry(frozen.number, frozen.user_attrs, ticket, frozen.system_attrs,
                                                 INTERRUPTED)
                if retried_by is None:
                    self._drop_checkpoint(int(frozen.user_attrs.get(ATTR_ROOT, frozen.number)))
                reaped.append(
                    TrialRecord(
                        number=frozen.number,
                        state=FAILED,
                        values=None,
                        params=ticket.params,
                        raw_params=ticket.raw_params,
                        metrics={},
                        history=[],
                        reason=reason,
                        pruned_epoch=None,
                        node=str(frozen.user_attrs.get(ATTR_NODE, "")),
                        duration=0.0,
                        attempt=ticket.attempt,
                        retry_of=ticket.retry_of,
                        retried_by=retried_by,
                    )
                )
        return reaped

    def _fail_orphans(self) -> None:
        """Fail RUNNING trials this coordinator created but never handed out (a dropped ``ask``)."""
        from optuna.trial import TrialState

        with self._lock:
            for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if frozen.number in self._live:
                    continue
                holder = frozen.user_attrs.get(ATTR_LEASE_HOLDER)
                if holder not in (None, self.holder):
                    continue
                if holder is None and frozen.params:
                    continue  # another driver's trial being set up right now: leave it
                try:
                    self._storage.set_trial_user_attr(frozen._trial_id, ATTR_REASON,
                                                      "lost: the database connection dropped while the trial was asked")
                    self._storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
                except Exception:
                    continue
                links = dict(self.study.user_attrs.get(STUDY_ATTR_RETRIES, {}))
                links[str(frozen.number)] = None
                self.study.set_user_attr(STUDY_ATTR_RETRIES, links)

    def _tell(self, trial: Any, **kwargs: Any) -> None:
        # GridSampler calls study.stop() once the grid is covered, which Optuna only
        # allows inside optimize(); the trial is stored before that raises.
        try:
            # skip_if_finished: a retried tell whose first attempt committed, or a trial
            # another driver reaped meanwhile, is left as it is (no finished trial changes).
            self.study.tell(trial, skip_if_finished=True, **kwargs)
        except RuntimeError as exc:
            if "Study.stop" not in str(exc):
                raise
            self.exhausted = True

    def _losses_after(self, user_attrs: dict[str, Any], kind: str) -> tuple[int, int, bool]:
        """The lineage's (own failures, interruptions) counting a new loss of ``kind``, and
        whether that loss may still be retried."""
        own = int(user_attrs.get(ATTR_OWN_FAILURES, 0))
        interruptions = int(user_attrs.get(ATTR_INTERRUPTIONS, 0))
        if kind == INTERRUPTED:
            interruptions += 1
            return own, interruptions, interruptions <= MAX_INTERRUPTIONS
        own += 1
        return own, interruptions, own <= self.spec.max_retries

    def _loss_reason(self, reason: str, user_attrs: dict[str, Any], kind: str) -> str:
        """``reason``, plus why no retry follows when this loss uses up the lineage's bound."""
        own, interruptions, retried = self._losses_after(user_attrs, kind)
        if retried:
            return reason
        if kind == INTERRUPTED:
            return (f"{reason}; not retried again: this trial was in flight at {interruptions} driver or node "
                    f"losses (bound {MAX_INTERRUPTIONS}), so it may be what brings them down (e.g. by exhausting "
                    "the machine's memory); run it alone to find out")
        return f"{reason}; not retried again: its worker died {own} times (max_retries={self.spec.max_retries})"

    def _enqueue_retry(self, number: int, user_attrs: dict[str, Any], ticket: TrialTicket,
                       system_attrs: dict[str, Any] | None, kind: str) -> int | None:
        """Enqueue the next attempt of trial ``number``, lost in a way of ``kind`` (LOST or
        INTERRUPTED); return its number, or None when the lineage has used up that kind's
        bound. The link failed -> retry is kept in the study attr ``sweeplab.retries`` (a
        finished trial's attrs cannot change)."""
        own, interruptions, retried = self._losses_after(user_attrs, kind)
        if not retried:
            return None
        root = int(user_attrs.get(ATTR_ROOT, number))
        grid_keys = ("grid_id", "search_space")
        grid = ({ATTR_GRID_ID: {k: system_attrs[k] for k in grid_keys}}
                if system_attrs and all(k in system_attrs for k in grid_keys) else {})
        self.study.enqueue_trial(
            dict(ticket.raw_params),
            user_attrs={ATTR_RETRY_OF: number, ATTR_ATTEMPT: ticket.attempt + 1, ATTR_ROOT: root,
                        ATTR_OWN_FAILURES: own, ATTR_INTERRUPTIONS: interruptions, **grid},
            skip_if_exists=False,
        )
        from optuna.trial import TrialState

        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        retry = max(t.number for t in waiting) if waiting else None
        # set_trial_user_attr refuses finished trials, so the link back goes through the
        # study's attrs: {failed number: retry number}.
        if retry is not None:
            links = dict(self.study.user_attrs.get(STUDY_ATTR_RETRIES, {}))
            links[str(number)] = retry
            self.study.set_user_attr(STUDY_ATTR_RETRIES, links)
        return retry

    @_with_db_retry
    def summary(self) -> StudySummary:
        """The study's summary (see ``sweeplab.search.summary``)."""
        from sweeplab.search.summary import summarize

        with self._lock:
            return summarize(self.study)

    @_with_db_retry
    def link_run(self, number: int, run_id: str) -> None:
        """Record trial ``number``'s MLflow run: as a trial attr while it runs, else in the study attrs."""
        with self._lock:
            trial = self._live.get(number)
            if trial is not None:
                trial.set_user_attr(ATTR_RUN_ID, run_id)
                return
            links = dict(self.study.user_attrs.get(STUDY_ATTR_RUN_IDS, {}))
            links[str(number)] = run_id
            self.study.set_user_attr(STUDY_ATTR_RUN_IDS, links)

    @_with_db_retry
    def finished_digest(self) -> list[TrialDigest]:
        """Every finished trial, compactly: what the tracker needs to repair MLflow after a crash."""
        from optuna.trial import TrialState

        with self._lock:
            trials = self.study.get_trials(deepcopy=False)
            retries = dict(self.study.user_attrs.get(STUDY_ATTR_RETRIES, {}))
            run_links = dict(self.study.user_attrs.get(STUDY_ATTR_RUN_IDS, {}))
        return [
            TrialDigest(
                number=t.number,
                state=t.state.name,
                raw_params=dict(t.params),
                intermediate={int(k): float(v) for k, v in t.intermediate_values.items()},
                metrics=dict(t.user_attrs.get(ATTR_METRICS, {})),
                reason=t.user_attrs.get(ATTR_REASON),
                pruned_epoch=t.user_attrs.get(ATTR_PRUNED_EPOCH),
                node=t.user_attrs.get(ATTR_NODE, ""),
                retried_by=retries.get(str(t.number)),
                retry_of=t.user_attrs.get(ATTR_RETRY_OF),
                run_id=t.user_attrs.get(ATTR_RUN_ID) or run_links.get(str(t.number)),
                values=list(t.values) if t.values else None,
            )
            for t in trials
            if t.state not in (TrialState.RUNNING, TrialState.WAITING)
        ]

    @_with_db_retry
    def is_exhausted(self) -> bool:
        """True when nothing is left to run: the sampler has nothing new to propose (a
        covered grid) and no enqueued retry waits (a lost trial's retry runs even when the
        trial that covered the grid finished before it)."""
        from optuna.trial import TrialState

        with self._lock:
            if not self.exhausted:
                return False
            return not self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))



def count_states(trials: list[Any], retried: set[str]) -> dict[str, int]:
    """Count trials by state; a FAIL superseded by a retry counts as ``retried`` only, and a
    trial rejected by the constraints before it ran (PRUNED, attr ``sweeplab.rejected``) as
    ``rejected`` only: neither counts toward ``finished``."""
    from optuna.trial import TrialState

    out = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0, "retried": 0, "rejected": 0}
    for t in trials:
        if t.state == TrialState.FAIL and str(t.number) in retried:
            out["retried"] += 1
        elif t.state == TrialState.PRUNED and t.user_attrs.get(ATTR_REJECTED):
            out["rejected"] += 1
        elif t.state.name in out:
            out[t.state.name] += 1
    out["finished"] = out["COMPLETE"] + out["PRUNED"] + out["FAIL"]
    return out
