"""Resume safety: a study may only be continued with the spec it was created with.

Run-level settings (``trials``, ``workers``, ``timeout``, ``resources``,
``max_retries``, ``priority``) may change between runs; anything that changes what a trial means
(space, objective, metric, direction, sampler, pruner, seed) is refused with a diff, except
a sampler or pruner left to ``auto``, which keeps the study's own (:func:`keep_stored_choices`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeplab.spec import StudySpec

RUN_LEVEL_KEYS = ("trials", "workers", "timeout", "resources", "max_retries", "priority")


def spec_diff(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Lines ``path: stored -> current`` for every study-defining difference."""
    lines: list[str] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if not path and key in RUN_LEVEL_KEYS:
                    continue
                walk(f"{path}.{key}" if path else key, a.get(key), b.get(key))
        elif a != b:
            lines.append(f"{path}: {json.dumps(a)} -> {json.dumps(b)}")

    walk("", stored, current)
    return lines


def stored_spec(study_name: str, storage_url: str, wal: bool = True) -> dict[str, Any] | None:
    """The spec recorded by an existing study, or None when the study does not exist
    (``wal``: open SQLite in WAL mode, as the study's coordinator will)."""
    import optuna

    from sweeplab.core.keys import STUDY_ATTR_SPEC
    from sweeplab.search.storage import open_storage

    if storage_url.startswith("sqlite:///"):
        path = storage_url[len("sqlite:///") :]
        if path != ":memory:" and not os.path.exists(path):
            return None  # do not create a database just to look into it
    storage = open_storage(storage_url, wal=wal)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    attrs = storage.get_study_user_attrs(study_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return dict(attrs.get(STUDY_ATTR_SPEC, {}))


def keep_stored_choices(spec: StudySpec, stored: dict[str, Any]) -> StudySpec:
    """``spec`` with the sampler and pruner an existing study was created with, where ``spec``
    left them to ``auto``.

    ``auto`` chooses for new studies: a study created before (by an older rule, or when the
    default was another sampler or pruner) resumes with what it ran, instead of being refused
    with a diff for a choice its user never wrote. A sampler or pruner the spec names is
    compared as usual.
    """
    from sweeplab.spec import parse_spec

    current = spec.to_dict()
    kept = {key: stored[key] for key in ("sampler", "pruner")
            if getattr(spec, key).auto and isinstance(stored.get(key), dict) and stored[key] != current[key]}
    if not kept:
        return spec
    again = parse_spec({**current, **kept}, source=spec.source)
    return dataclasses.replace(
        again,
        sampler=dataclasses.replace(again.sampler, auto=spec.sampler.auto),
        pruner=dataclasses.replace(again.pruner, auto=spec.pruner.auto),
    )
