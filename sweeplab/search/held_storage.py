"""The coordinator's view of the Optuna storage: the trials it holds are kept in memory.

Optuna's ``_CachedStorage`` (what ``create_study`` wraps an ``RDBStorage`` in) re-reads
every unfinished trial from the database on each ``get_all_trials``: a pruner's decision
on every reported epoch and the sampler's reads in every ask cost six queries each,
most of it re-reading the coordinator's own trials in flight.

The coordinator is the only writer of the trials it leased (DESIGN.md: one writer; a
reaper only touches trials whose lease holder died or whose lease expired), so its
copies of them are exact as long as every write goes to the database and then to the
copy. :class:`HeldTrialsStorage` does that, and skips the database read when nothing
else can have changed: no unfinished trial in the study that it does not hold, and the
same trial count and highest trial id as it knows (one cheap aggregate query, asked
at most every :data:`RECHECK_SECONDS`). Any other change (another driver's trial, an
enqueued retry, a finished trial) makes it read exactly as Optuna's cache does. Every
write still goes to the database first: what is stored does not change, only re-reads do.

This class uses private Optuna APIs (``_CachedStorage`` and ``optuna.storages._rdb``), so
the coordinator uses it only with the Optuna versions it was tested with
(:mod:`sweeplab.core.compat`); ``tests/search/test_storage_conformance.py`` runs Optuna's
storage conformance suite over it on SQLite and PostgreSQL, outside and inside
:meth:`HeldTrialsStorage.batch`. What it relaxes, as Optuna's ``_CachedStorage`` does for
all writes: a held trial's writes may reach the database later than the call (reported
values up to :data:`FLUSH_SECONDS`; inside ``batch()`` at the end of the block), always
before the trial's state changes; this object's own reads see them at once, another
process's reads when they are written. Inside ``batch()``, a write the database refuses
(a distribution another process stored differently, a trial another process finished)
raises at the end of the block rather than at the call; the held copies of the trials in
that batch are then dropped and read again, so this object shows what is stored.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Container, Iterator, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage, _CachedStorage
from optuna.trial import FrozenTrial, TrialState

#: Reported values of held trials wait at most this long (while other calls come) before
#: they are written; any ask, tell, lease renewal or state change writes them at once.
FLUSH_SECONDS = 1.0

#: How old the view of trials written by *other* processes may be: within this many
#: seconds of the last look, reads skip the query that checks the database for them.
#: The coordinator's own writes are always in its view at once.
RECHECK_SECONDS = 0.25


class _NotUpdatable(Exception):
    """A batched write met a finished trial: write one by one to get Optuna's own error."""


def _json_roundtrip(value: Any) -> Any:
    """What the database gives back for ``value`` (attrs are stored as JSON)."""
    return json.loads(json.dumps(value))


class HeldTrialsStorage(_CachedStorage):
    """``_CachedStorage`` that trusts its in-memory copies of the trials this process holds.

    A trial is held from its creation (or its WAITING -> RUNNING claim) by this process
    until a write finishes it.
    """

    def __init__(self, backend: RDBStorage | Any) -> None:
        super().__init__(backend)
        self.backend = backend
        self._held: dict[int, FrozenTrial] = {}  # trial_id -> the cached object (same as in the cache)
        self._dirty: set[int] = set()  # studies whose cache must be refreshed from the database
        self._max_id: dict[int, int] = {}  # study_id -> highest trial id in the cache
        self._pending: list[tuple[str, int, tuple[Any, ...]]] = []  # deferred writes, in order
        self._pending_since: float | None = None
        self._batch_depth = 0
        self._checked_at: dict[int, float] = {}  # study_id -> when the view last matched the database

    @property
    def optuna_storage(self) -> HeldTrialsStorage:
        """What ``optuna.create_study`` gets: this storage itself."""
        return self

    def __getstate__(self) -> dict[Any, Any]:
        """A pickled copy holds no trials and no deferred writes (they are written first)."""
        self.flush()
        state = super().__getstate__()
        state.update(_held={}, _pending=[], _pending_since=None, _batch_depth=0, _checked_at={},
                     _dirty=set(self._studies))
        return state

    # ------------------------------------------------------------ batched writes
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer every write to held trials inside the block; write them in one transaction at its end."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
        if self._batch_depth == 0:
            self.flush()

    def _defer(self, kind: str, trial_id: int, args: tuple[Any, ...]) -> None:
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._pending.append((kind, trial_id, args))

    def flush(self) -> None:
        """Write every deferred write in one transaction (one by one where that fails)."""
        with self._lock:
            ops, self._pending, self._pending_since = self._pending, [], None
        if not ops:
            return
        from optuna.storages._rdb.storage import _create_scoped_session

        backend = self._backend
        try:
            with _create_scoped_session(backend.scoped_session) as session:
                self._write_batch(session, ops)
            return
        except Exception as exc:
            from sweeplab.search.coordinator import is_transient_db_error

            if is_transient_db_error(exc):
                with self._lock:  # nothing was written: keep them for the next flush (a retry)
                    self._pending = ops + self._pending
                    self._pending_since = self._pending_since or time.monotonic()
                raise
        # One bad write (e.g. a trial finished elsewhere) must not sink the others: write
        # them one by one, as unbatched writes would have been, and raise the first error.
        # The held copies showed every write at once: read those trials again afterwards.
        with self._lock:
            self._forget(ops)
        first: Exception | None = None
        for kind, trial_id, args in ops:
            try:
                if kind == "param":
                    backend._set_trial_param(trial_id, *args)
                elif kind == "value":
                    backend.set_trial_intermediate_value(trial_id, *args)
                elif kind == "user":
                    backend.set_trial_user_attr(trial_id, *args[:2])
                else:
                    backend.set_trial_system_attr(trial_id, *args[:2])
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def _write_batch(self, session: Any, ops: list[tuple[str, int, tuple[Any, ...]]]) -> None:
        """Write ``ops`` in order in ``session`` (one transaction).

        Every op is for a trial this process holds, so one query checks they are all
        still RUNNING (else :class:`_NotUpdatable`). What cannot exist yet in the
        database (a param, a reported step, an attr key the held copy did not have) is
        a plain multi-row insert; an attr that exists is Optuna's own upsert, and so is
        a param name this cache has no distribution for (Optuna checks it against the
        study's stored ones). The inserts collected so far go out before each upsert,
        so the order of writes to one key is kept. Optuna's ORM path would instead look the trial up and check
        it again for every single write.
        """
        import sqlalchemy
        from optuna.distributions import distribution_to_json
        from optuna.storages._rdb import models

        ids = {trial_id for _, trial_id, _ in ops}
        states = session.execute(sqlalchemy.select(models.TrialModel.state).where(
            models.TrialModel.trial_id.in_(ids))).scalars().all()
        if len(states) != len(ids) or any(st != TrialState.RUNNING for st in states):
            raise _NotUpdatable("a held trial is no longer RUNNING")
        attr_models: dict[str, Any] = {"user": models.TrialUserAttributeModel,
                                       "system": models.TrialSystemAttributeModel}
        inserts: dict[Any, list[dict[str, Any]]] = {}

        def send_inserts() -> None:
            for model, rows in inserts.items():
                session.execute(sqlalchemy.insert(model), rows)
            inserts.clear()

        for kind, trial_id, args in ops:
            if kind == "param":
                name, value_internal, distribution, known = args
                if known is None:  # first use of the name here: Optuna checks it against the database
                    send_inserts()
                    self._backend._set_trial_param_without_commit(session, trial_id, *args)
                    continue
                inserts.setdefault(models.TrialParamModel, []).append({
                    "trial_id": trial_id, "param_name": name, "param_value": value_internal,
                    "distribution_json": distribution_to_json(distribution)})
            elif kind == "value":
                # Trial.report never writes a step twice.
                stored, value_type = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(
                    float(args[1]))
                inserts.setdefault(models.TrialIntermediateValueModel, []).append({
                    "trial_id": trial_id, "step": int(args[0]), "intermediate_value": stored,
                    "intermediate_value_type": value_type})
            else:
                key, value, new = args
                if new:
                    inserts.setdefault(attr_models[kind], []).append(
                        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)})
                else:
                    send_inserts()
                    self._backend._set_trial_attr_without_commit(session, attr_models[kind], trial_id, key, value)
        send_inserts()

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        self.flush()  # the database copy replaces the held one: it must hold every write
        read_at = time.monotonic()
        super()._read_trials_from_remote_storage(study_id)
        with self._lock:
            self._checked_at[study_id] = read_at

    # ------------------------------------------------------------ cache bookkeeping
    def _add_trials_to_cache(self, study_id: int, trials: list[FrozenTrial]) -> None:
        super()._add_trials_to_cache(study_id, trials)
        for trial in trials:
            tid = trial._trial_id
            self._max_id[study_id] = max(self._max_id.get(study_id, -1), tid)
            if tid in self._held:
                if trial.state == TrialState.RUNNING:
                    self._held[tid] = trial  # the fresh copy from the database replaces ours
                else:
                    del self._held[tid]

    def _forget(self, ops: list[tuple[str, int, tuple[Any, ...]]]) -> None:
        """Drop the held copies of the trials ``ops`` wrote (and the distributions they brought into
        the cache) after the database refused some of them: they are read again, as Optuna's cache would."""
        for kind, trial_id, args in ops:
            known = self._trial_id_to_study_id_and_number.get(trial_id)
            if known is None:
                continue
            study_id = known[0]
            if kind == "param" and args[3] is None:  # the batch's own distribution, not a stored one
                cached = self._studies[study_id].param_distribution
                if cached.get(args[0]) is args[2]:
                    del cached[args[0]]
            self._held.pop(trial_id, None)
            self._dirty.add(study_id)

    def _update_held(self, trial_id: int, **changes: dict[Any, Any]) -> None:
        """Replace the held copy of ``trial_id`` by one with ``changes`` merged into its dicts
        (``params={...}``, ``user_attrs={...}``, ...). Copy on write: the trials a
        ``get_all_trials(deepcopy=False)`` returned keep showing what they showed."""
        old = self._held.get(trial_id)
        if old is None:
            return
        new = copy.copy(old)
        for name, updates in changes.items():
            setattr(new, name, {**getattr(old, name), **updates})
        study_id, number = self._trial_id_to_study_id_and_number[trial_id]
        self._studies[study_id].trials[number] = new
        self._held[trial_id] = new

    def _hold(self, trial_id: int) -> None:
        study_id, number = self._trial_id_to_study_id_and_number[trial_id]
        trial = self._studies[study_id].trials[number]
        if trial.state == TrialState.RUNNING:
            self._held[trial_id] = trial

    def _changed_elsewhere(self, study_id: int) -> bool:
        """True when the database may hold something the cache does not."""
        if study_id in self._dirty or study_id not in self._studies:
            return True
        study = self._studies[study_id]
        if any(tid not in self._held for tid in study.unfinished_trial_ids):
            return True
        if any(not t.state.is_finished() and t._trial_id not in self._held for t in self._recent(study_id)):
            return True
        now = time.monotonic()
        if now - self._checked_at.get(study_id, -math.inf) < RECHECK_SECONDS:
            return False
        import sqlalchemy
        from optuna.storages._rdb import models

        stmt = sqlalchemy.select(sqlalchemy.func.count(models.TrialModel.trial_id),
                                 sqlalchemy.func.max(models.TrialModel.trial_id)).where(
            models.TrialModel.study_id == study_id)
        with self._backend.engine.connect() as conn:
            count, max_id = conn.execute(stmt).one()
        changed = int(count or 0) != len(study.trials) or int(max_id if max_id is not None else -1) != self._max_id.get(
            study_id, -1)
        if not changed:
            self._checked_at[study_id] = now
        return changed

    def _recent(self, study_id: int) -> list[FrozenTrial]:
        """Trials cached with an id above the last finished one (the only ones that can be unfinished)."""
        study = self._studies[study_id]
        last = study.last_finished_trial_id
        return [t for t in study.trials.values() if t._trial_id > last]

    # ------------------------------------------------------------ reads
    def finished_copy(self, trial_id: int) -> FrozenTrial | None:
        """The stored trial if it is finished; None while this process holds it (or it is unfinished)."""
        with self._lock:
            if trial_id in self._held:
                return None
        trial = self.get_trial(trial_id)
        return trial if trial.state.is_finished() else None

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            held = self._held.get(trial_id)
            if held is not None:
                return copy.deepcopy(held)
        self.flush()
        return super().get_trial(trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        with self._lock:
            fresh = not self._changed_elsewhere(study_id)
        if not fresh:
            self._read_trials_from_remote_storage(study_id)
            with self._lock:
                self._dirty.discard(study_id)
        with self._lock:
            study = self._studies[study_id]
            if states is not None:
                trials = [t for t in study.trials.values() if t.state in states]
            else:
                trials = list(study.trials.values())
            trials.sort(key=lambda t: t.number)
            return copy.deepcopy(trials) if deepcopy else trials

    # ------------------------------------------------------------ writes (database first, then the copy)
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        with self._lock:
            self._hold(trial_id)
        return trial_id

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        with self._lock:
            held = self._held.get(trial_id) if self._batch_depth else None
            if held is not None:
                from optuna.distributions import check_distribution_compatibility

                study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                cached = self._studies[study_id].param_distribution.get(param_name)
                if cached is not None:
                    check_distribution_compatibility(cached, distribution)  # raise now, as unbatched
                else:
                    self._studies[study_id].param_distribution[param_name] = distribution
                self._defer("param", trial_id, (param_name, param_value_internal, distribution, cached))
                self._update_held(trial_id, distributions={param_name: distribution},
                                  params={param_name: distribution.to_external_repr(param_value_internal)})
                return
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        with self._lock:
            self._update_held(trial_id, distributions={param_name: distribution},
                              params={param_name: distribution.to_external_repr(param_value_internal)})

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        self.flush()  # a trial's writes reach the database before its state changes
        try:
            ok = super().set_trial_state_values(trial_id, state, values)
        except Exception:
            self._mark_dirty(trial_id)
            raise
        # Claims (WAITING -> RUNNING) and finishes are re-read once from the database.
        self._mark_dirty(trial_id)
        with self._lock:
            if state.is_finished():
                self._held.pop(trial_id, None)
        study_id = self._study_of(trial_id)
        if ok and state == TrialState.RUNNING and study_id is not None:
            self._read_trials_from_remote_storage(study_id)
            with self._lock:
                self._hold(trial_id)
        return ok

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        with self._lock:
            held = self._held.get(trial_id)
            if held is not None:
                self._defer("value", trial_id, (step, intermediate_value))
                self._update_held(trial_id, intermediate_values={step: float(intermediate_value)})
                due = self._batch_depth == 0 and time.monotonic() - (self._pending_since or 0.0) >= FLUSH_SECONDS
            else:
                due = False
        if held is None:
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        elif due:
            self.flush()

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr("user", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr("system", trial_id, key, value)

    def _set_attr(self, kind: str, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            held = self._held.get(trial_id)
            deferred = held is not None and self._batch_depth > 0
            if deferred and held is not None:
                stored = held.user_attrs if kind == "user" else held.system_attrs
                self._defer(kind, trial_id, (key, value, key not in stored))  # new: a plain insert
        if not deferred:
            self.flush()  # keep the order of writes
            if kind == "user":
                super().set_trial_user_attr(trial_id, key, value)
            else:
                super().set_trial_system_attr(trial_id, key, value)
        if held is not None:
            with self._lock:
                self._update_held(trial_id, **{f"{kind}_attrs": {key: _json_roundtrip(value)}})

    # ------------------------------------------------------------ helpers
    def _study_of(self, trial_id: int) -> int | None:
        with self._lock:
            known = self._trial_id_to_study_id_and_number.get(trial_id)
        return known[0] if known is not None else None

    def _mark_dirty(self, trial_id: int) -> None:
        with self._lock:
            known = self._trial_id_to_study_id_and_number.get(trial_id)
            if known is not None:
                self._dirty.add(known[0])
            else:
                self._dirty.update(self._studies)
