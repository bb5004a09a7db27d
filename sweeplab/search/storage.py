"""Where the Optuna study lives: resolving the storage URL and opening it.

Default: ``sqlite:///sweeplab.db`` in the current directory (made absolute, because
the coordinator actor may run with another working directory). ``SWEEPLAB_STORAGE``
or ``--storage`` override it; PostgreSQL URLs are used as they are.

The coordinator keeps its study through :func:`open_study_storage`: the held storage
(:mod:`sweeplab.search.held_storage`, private Optuna APIs, only with the Optuna versions
it was tested with, see :mod:`sweeplab.core.compat`) or :class:`PlainStudyStorage`
(Optuna's own storage through its public API). :class:`StorageOptions` switches the
held storage and SQLite's WAL mode off (benchmarks' "before" baseline).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sweeplab.core.errors import StorageError, StudyNotFoundError
from sweeplab.core.store_templates import seed_from_template

# the storage rule lives in core (the command line reads it without importing the search code)
from sweeplab.core.stores import STORAGE_ENV
from sweeplab.core.stores import resolve_storage_url as resolve_storage_url

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial, TrialState


def open_storage(url: str, wal: bool = True) -> optuna.storages.RDBStorage:
    """Open the RDB storage at ``url`` (creating its schema if needed); SQLite in WAL mode
    (see :func:`use_wal`) unless ``wal`` is False. A new SQLite store is a copy of an empty
    one Optuna created once per Optuna version (:func:`seed_optuna_store`).

    Raises StorageError with the URL (password hidden) and the database's message when
    it cannot be reached.
    """
    import optuna

    engine_kwargs: dict[str, object] = {}
    if url.startswith("sqlite:"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
        seed_optuna_store(url)
    else:
        engine_kwargs = {"pool_pre_ping": True, "pool_recycle": 300}
    last: Exception | None = None
    # Two drivers starting on an empty database race to create the schema; the loser
    # fails on a duplicate type/table and succeeds on the next try (the schema is there).
    for attempt in range(4):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=False)
            if wal and url.startswith("sqlite:"):
                use_wal(storage.engine)
            return storage
        except Exception as exc:
            last = exc
            if "duplicate" not in str(exc).lower() and "already exists" not in str(exc).lower():
                break
            time.sleep(0.5 * (attempt + 1))
    raise StorageError(
        f"cannot open the Optuna storage {redact(url)}: {last}. "
        f"Check the URL given by --storage or ${STORAGE_ENV}, and that the database is running."
    ) from last


def seed_optuna_store(url: str) -> bool:
    """Make a missing (or empty) SQLite store at ``url`` a copy of an empty store that Optuna
    created (its tables, and its schema version stamped); return whether it did. Optuna then
    opens the copy as any store of its version: 0.15-0.4 s less than creating the tables, in
    every new directory. Never raises (:func:`sweeplab.core.store_templates.seed_from_template`)."""
    import optuna

    def build(path: Path) -> None:
        optuna.storages.RDBStorage(f"sqlite:///{path}").engine.dispose()

    return seed_from_template(url, f"optuna-{optuna.__version__}-empty.db", build)


def use_wal(engine: object) -> None:
    """Open SQLite connections of ``engine`` in WAL mode with ``synchronous=NORMAL``.

    The default rollback journal fsyncs on every commit, and Optuna commits every param,
    attr and reported value: that fsync was most of a trial's storage time. In WAL mode a
    commit is still atomic and survives a crash of the process (a killed driver loses
    nothing); only an OS crash or power loss can roll back the last commits. Readers
    (``sweeplab status``, the dashboards) do not block the writer. Falls back silently
    to the default journal where WAL is unavailable (a read-only or network filesystem).
    """
    from sqlalchemy import event

    def on_connect(dbapi_conn: object, _record: object) -> None:
        cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        except Exception:  # keep the default journal
            pass
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # type: ignore[attr-defined]  # connections opened before the listener


@dataclass(frozen=True)
class StorageOptions:
    """How the coordinator keeps its Optuna study.

    ``held``: hold the coordinator's own trials in memory (:mod:`sweeplab.search.held_storage`).
    None decides by the installed Optuna (:func:`sweeplab.core.compat.held_storage_usable`:
    used with the versions it was tested with, otherwise Optuna's own storage and one
    warning); True uses it whatever the version; False uses Optuna's own storage.
    ``wal``: open SQLite stores in WAL mode (:func:`use_wal`).
    """

    held: bool | None = None
    wal: bool = True

    def resolved(self, optuna_version: str | None = None, environ: Mapping[str, str] | None = None) -> StorageOptions:
        """These options with ``held`` decided by the installed Optuna (``optuna_version``: a version to
        check instead; ``environ``: instead of ``os.environ``), warning once when it is untested."""
        if self.held is not None:
            return self
        from sweeplab.core.compat import held_storage_usable

        return replace(self, held=held_storage_usable(optuna_version, environ))


class StudyStorage(Protocol):
    """What the coordinator needs of its storage, besides handing ``optuna_storage`` to Optuna."""

    @property
    def optuna_storage(self) -> BaseStorage: ...

    def batch(self) -> contextlib.AbstractContextManager[None]: ...

    def flush(self) -> None: ...

    def finished_copy(self, trial_id: int) -> FrozenTrial | None: ...

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]: ...

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None: ...

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None: ...

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        ...


class PlainStudyStorage:
    """Optuna's own storage, through its public API only.

    ``optuna_storage`` is the ``RDBStorage`` itself: ``optuna.create_study`` wraps it as it
    wraps a URL (Optuna's cache of finished trials; every write its own transaction).
    :meth:`batch` defers nothing; the coordinator's direct writes go to the database.
    Any other Optuna storage works the same way (``InMemoryStorage``: a simulated study).
    """

    def __init__(self, backend: BaseStorage) -> None:
        self.backend = backend

    @property
    def optuna_storage(self) -> BaseStorage:
        return self.backend

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        yield

    def flush(self) -> None:
        pass

    def finished_copy(self, trial_id: int) -> FrozenTrial | None:
        """The stored trial if it is finished, else None."""
        trial = self.backend.get_trial(trial_id)
        return trial if trial.state.is_finished() else None

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self.backend.get_trial_system_attrs(trial_id)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.backend.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.backend.set_trial_system_attr(trial_id, key, value)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self.backend.set_trial_state_values(trial_id, state, values)


def open_study_storage(url: str, options: StorageOptions | None = None) -> StudyStorage:
    """The coordinator's storage of the study at ``url``: the held storage or Optuna's own (``options``)."""
    options = (options or StorageOptions()).resolved()
    backend = open_storage(url, wal=options.wal)
    if not options.held:
        return PlainStudyStorage(backend)
    from sweeplab.search.held_storage import HeldTrialsStorage

    return HeldTrialsStorage(backend)


def load_existing_study(name: str, url: str) -> optuna.Study:
    """Load study ``name`` from ``url``; StudyNotFoundError lists the studies that exist."""
    import optuna

    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError as exc:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
        hint = f"studies there: {', '.join(names)}" if names else "it holds no study"
        raise StudyNotFoundError(
            f"no study named {name!r} in {redact(url)} ({hint}). "
            f"Pass --storage or set ${STORAGE_ENV} if the study lives elsewhere."
        ) from exc


def redact(url: str) -> str:
    """Hide the password of a database URL for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url
