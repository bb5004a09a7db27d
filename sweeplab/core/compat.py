"""Private APIs of Optuna and Ray that sweeplab calls, and the exact versions they were tested with.

Two speed-ups reach past a dependency's public surface:

- the coordinator's held storage (:mod:`sweeplab.search.held_storage`) subclasses Optuna's
  ``_CachedStorage`` and writes batches through ``optuna.storages._rdb`` (its ORM models,
  ``_create_scoped_session``, ``RDBStorage._set_trial_param``,
  ``_set_trial_param_without_commit``, ``_set_trial_attr_without_commit``). With every version
  in :data:`TESTED_OPTUNA` it passes Optuna's own storage conformance suite
  (``optuna.testing.pytest_storages.StorageTestCase``, run by
  ``tests/search/test_storage_conformance.py``) on SQLite and PostgreSQL;
- :func:`sweeplab.search.seeding.trial_seeded_sampler` re-seeds a TPE or random sampler
  before each trial instead of building a new one (which would recompute TPE's
  intersection search space over every trial, at every ask), by seeding the
  ``numpy.random.RandomState`` behind their ``_rng`` (and TPE's ``_random_sampler``);
  ``tests/search/test_seeding.py`` checks that a re-seeded sampler asks exactly what a
  fresh one would. Untested versions build a sampler per trial (same results, slower);
- :func:`sweeplab.study.session.shutdown_own_ray` stops a local Ray's autoscaler monitor
  early through ``ray._private.worker._global_node.kill_monitor`` (tested with
  :data:`TESTED_RAY`).

Each is used only when the installed version is one listed here (the versions
``constraints.txt`` pins). With any other version sweeplab takes the public path instead:
Optuna's own storage, what ``optuna.create_study(storage=url)`` uses (the same results,
more database reads per trial; one warning per process), and a plain ``ray.shutdown()``
(about a second slower; no warning). Setting ``SWEEPLAB_ALLOW_UNTESTED=1`` uses the
private paths anyway.

Adding a version: install it, run the tests with ``SWEEPLAB_ALLOW_UNTESTED=1`` and
``SWEEPLAB_REQUIRE_SERVICES=1`` (so the conformance suite cannot skip PostgreSQL;
``tests/core/test_compat.py`` fails until the version is listed), then list it here and
pin it in ``constraints.txt``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

TESTED_OPTUNA: tuple[str, ...] = ("5.0.0",)
"""Optuna versions the held storage was tested with (conformance suite on SQLite and PostgreSQL)."""

TESTED_RAY: tuple[str, ...] = ("2.60.0",)
"""Ray versions :func:`sweeplab.study.session.shutdown_own_ray`'s private call was tested with."""

ALLOW_UNTESTED_ENV = "SWEEPLAB_ALLOW_UNTESTED"
"""Set to ``1`` to use the private paths with versions not in the lists above."""

log = logging.getLogger("sweeplab.compat")

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class VersionCheck:
    """The installed version of ``package`` against the ones a private path was tested with."""

    package: str
    installed: str
    tested: tuple[str, ...]
    allowed_untested: bool  # $SWEEPLAB_ALLOW_UNTESTED is set

    @property
    def tested_here(self) -> bool:
        return self.installed in self.tested

    @property
    def use_private(self) -> bool:
        """True when the private path may be used: a tested version, or the user allowed an untested one."""
        return self.tested_here or self.allowed_untested


def installed_version(package: str) -> str:
    """The installed distribution's version (``"not installed"`` when it is missing)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def check_version(package: str, tested: tuple[str, ...], installed: str | None = None,
                  environ: Mapping[str, str] | None = None) -> VersionCheck:
    """Compare ``installed`` (default: the installed distribution's version) with ``tested``."""
    env = os.environ if environ is None else environ
    return VersionCheck(package, installed if installed is not None else installed_version(package), tested,
                        env.get(ALLOW_UNTESTED_ENV, "").strip().lower() in ("1", "true", "yes"))


def held_storage_usable(installed: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when the coordinator may use the held storage with this Optuna (``installed``: a version to
    check instead of the installed one). Otherwise warns once per process and returns False: the study
    then runs on Optuna's own storage."""
    check = check_version("optuna", TESTED_OPTUNA, installed, environ)
    if check.tested_here:
        return True
    tested = ", ".join(check.tested)
    if check.use_private:
        _warn_once(check, f"sweeplab's held study storage uses private Optuna APIs and was tested with optuna "
                          f"{tested}; optuna {check.installed} is installed and ${ALLOW_UNTESTED_ENV} is set, so it "
                          f"is used untested. Unset ${ALLOW_UNTESTED_ENV} to use Optuna's own storage instead.")
        return True
    _warn_once(check, f"sweeplab's held study storage uses private Optuna APIs and was tested with optuna {tested}, "
                      f"but optuna {check.installed} is installed: this study uses Optuna's own storage instead "
                      f"(same results, more database reads per trial). To get the held storage back, install a "
                      f"tested version (pip install 'optuna=={check.tested[-1]}', or install with -c "
                      f"constraints.txt), or set {ALLOW_UNTESTED_ENV}=1 to use it with optuna {check.installed} "
                      f"untested.")
    return False


def sampler_reseed_usable(installed: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when :func:`sweeplab.search.seeding.trial_seeded_sampler` may re-seed Optuna's TPE and random
    samplers through their private RNG attributes (``installed``: a version to check instead of the
    installed one). Otherwise a sampler is built per trial: the same draws, slower asks; no warning."""
    check = check_version("optuna", TESTED_OPTUNA, installed, environ)
    if not check.use_private:
        log.debug("optuna %s is not one of the tested %s: one sampler per trial", check.installed, check.tested)
    return check.use_private


def private_ray_shutdown_usable(installed: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when :func:`sweeplab.study.session.shutdown_own_ray` may stop Ray's monitor through Ray's
    private API (``installed``: a version to check instead of the installed one). Otherwise the
    shutdown is a plain ``ray.shutdown()``, about a second slower: logged at debug level only."""
    check = check_version("ray", TESTED_RAY, installed, environ)
    if not check.use_private:
        log.debug("ray %s is not one of the tested %s: plain ray.shutdown()", check.installed, check.tested)
    return check.use_private


def _warn_once(check: VersionCheck, message: str) -> None:
    with _warned_lock:
        key = (check.package, check.installed)
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message)
