"""``sweeplab run SPEC --fork NEW_NAME``: a new study warm-started from an existing one.

When a spec changed in a way that changes what a trial means, the old study cannot
be continued with it. A fork creates study ``NEW_NAME`` with the new spec and copies
into it every COMPLETE trial of the old study whose params are valid in the new
space (same names, values inside the new ranges or choices), with its values, so the
sampler starts from that knowledge. The old study is never changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeplab.core.errors import UsageError
from sweeplab.core.keys import ATTR_FORKED_FROM_STUDY, ATTR_FORKED_FROM_TRIAL, ATTR_METRICS, STUDY_ATTR_FORKED_FROM
from sweeplab.core.records import ForkResult

if TYPE_CHECKING:
    from sweeplab.spec import StudySpec


def fork_study(spec: StudySpec, source_name: str, storage_url: str) -> ForkResult:
    """Create ``spec.study`` from the compatible finished trials of ``source_name``.

    Returns how many finished trials were copied and how many were not compatible.
    Raises UsageError when the target study already exists or the source does not.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    from sweeplab.core.keys import STUDY_ATTR_SPEC
    from sweeplab.search.storage import load_existing_study, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = load_existing_study(source_name, storage_url)
    storage = open_storage(storage_url)
    directions = [optuna.study.StudyDirection.MAXIMIZE if d == "maximize" else optuna.study.StudyDirection.MINIMIZE
                  for d in spec.direction]
    try:
        target = optuna.create_study(storage=storage, study_name=spec.study, directions=directions)
    except optuna.exceptions.DuplicatedStudyError as exc:
        raise UsageError(f"cannot fork into {spec.study!r}: a study with that name exists already; "
                         "pick another --fork name") from exc
    target.set_user_attr(STUDY_ATTR_SPEC, spec.to_dict())
    target.set_user_attr(STUDY_ATTR_FORKED_FROM, source_name)
    scratch = optuna.create_study(directions=directions)
    copied = skipped = 0
    for old in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if len(old.values) != len(directions):
            skipped += 1
            continue
        scratch.enqueue_trial(dict(old.params))
        probe = scratch.ask()
        try:
            raw = spec.space.suggest(probe)
        except Exception:
            skipped += 1
            scratch.tell(probe, state=TrialState.FAIL)
            continue
        dists = probe.distributions
        compatible = all(
            name in old.params and dist._contains(dist.to_internal_repr(old.params[name]))
            for name, dist in dists.items()
        )
        scratch.tell(probe, state=TrialState.FAIL)
        if not compatible:
            skipped += 1
            continue
        target.add_trial(create_trial(
            params={name: raw[name] for name in dists},
            distributions=dict(dists),
            values=list(old.values),
            intermediate_values=dict(old.intermediate_values),
            user_attrs={**{k: v for k, v in old.user_attrs.items() if k == ATTR_METRICS},
                        ATTR_FORKED_FROM_TRIAL: old.number, ATTR_FORKED_FROM_STUDY: source_name},
        ))
        copied += 1
    return ForkResult(source=source_name, copied=copied, skipped=skipped)
