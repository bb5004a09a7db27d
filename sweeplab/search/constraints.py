"""Study constraints (the spec's ``constraints``), checked by the coordinator before a trial runs.

``constraints: {max_params: N}`` bounds the trainable parameters of a trial's network. The
count is analytic (:func:`sweeplab.spaces.architecture.count_mlp_params` from the resolved
``hidden_units`` and ``batch_norm`` and the dataset's input and output widths), so an
architecture that breaks the bound is rejected in ``ask``, before any worker trains it:

- every asked trial gets the Optuna constraint ``max_params`` (``trial.set_constraint``,
  a system attr; Optuna's convention: ``n_params - max_params``, feasible when ``<= 0``)
  and its count as user attr :data:`ATTR_N_PARAMS`. Optuna 5's constraint-aware samplers
  (TPE, NSGA-II, GP) read ``trial.constraints`` themselves: their ``constraints_func``
  argument is deprecated since Optuna 5.0 and would store a second copy, so
  ``build_sampler`` does not pass one;
- a violating trial is told PRUNED at once with user attrs :data:`ATTR_REJECTED` = True
  and ``sweeplab.fail_reason`` = ``"constraint max_params violated: 123456 > 50000"``. It
  never reaches a worker, gets no MLflow child run, and does not count toward the spec's
  ``trials`` (it cost nothing); ``status`` / ``best`` show it as ``n_rejected``. TPE uses
  it (infeasible trials rank last); NSGA-II and GP learn from COMPLETE trials only, which
  are all feasible here.

A space whose smallest architecture already breaks the bound is refused at once by
:func:`check_satisfiable` (the driver calls it right after loading the dataset, before any
store is touched). Otherwise, after :data:`MAX_REJECTIONS` rejections in a row, ``ask``
raises :class:`ConstraintUnsatisfiable`: the space almost never satisfies the constraint.
Each rejection costs a few storage writes (no training), and ``ask`` tries again at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sweeplab.core.errors import SweeplabError

if TYPE_CHECKING:
    from sweeplab.spec import StudySpec

MAX_REJECTIONS = 100


class ConstraintUnsatisfiable(SweeplabError):
    """The sampler kept proposing trials that break the study's constraints."""

    exit_code = 2


def check_satisfiable(
    spec: StudySpec, n_features: int, n_outputs: int, fixed_params: Mapping[str, Any] | None = None
) -> None:
    """Raise :class:`ConstraintUnsatisfiable` when even the space's smallest network breaks ``max_params``."""
    from sweeplab.spaces.architecture import smallest_architecture

    max_params = spec.constraints.get("max_params")
    if max_params is None or not spec.space.mlp:
        return
    n, params = smallest_architecture(spec.space, n_features, n_outputs, fixed_params)
    if n > int(max_params):
        where = "the fine-tuned source model" if fixed_params else "the smallest architecture of the space"
        raise ConstraintUnsatisfiable(
            f"constraints.max_params={int(max_params)} cannot hold: {where} (hidden_units "
            f"{list(params['hidden_units'])}, batch_norm {str(bool(params.get('batch_norm'))).lower()}) has {n} "
            f"parameters with {n_features} input features and {n_outputs} outputs. Raise max_params to at least "
            f"{n}{'' if fixed_params else ', or let the space propose fewer or narrower layers'}"
        )


def evaluate_constraints(
    constraints: Mapping[str, int],
    params: Mapping[str, Any],
    n_features: int | None,
    n_outputs: int | None,
) -> tuple[dict[str, float], int | None, str | None]:
    """``(values, n_params, reason)`` of resolved ``params`` under ``constraints``.

    ``values``: ``{name: violation}`` in Optuna's convention (``<= 0`` feasible);
    ``n_params``: the analytic parameter count (None when no constraint needs it);
    ``reason``: None when every constraint holds, else
    ``"constraint max_params violated: 123456 > 50000"``. Raises RuntimeError when a
    constraint needs the data shape and it is unknown.
    """
    from sweeplab.spaces.architecture import count_mlp_params

    values: dict[str, float] = {}
    reasons: list[str] = []
    n_params: int | None = None
    max_params = constraints.get("max_params")
    if max_params is not None:
        if n_features is None or n_outputs is None:
            raise RuntimeError(
                "constraints.max_params needs the dataset's input and output widths: the driver must call "
                "StudyCoordinator.set_data_shape(n_features, n_outputs) before the first ask"
            )
        n_params = count_mlp_params(
            params.get("hidden_units", ()), n_features, n_outputs, bool(params.get("batch_norm", False))
        )
        values["max_params"] = float(n_params - int(max_params))
        if n_params > int(max_params):
            reasons.append(f"constraint max_params violated: {n_params} > {int(max_params)}")
    return values, n_params, "; ".join(reasons) or None


def unsatisfiable_message(study: str, constraints: Mapping[str, int], attempts: int, last_reason: str) -> str:
    """The error text when ``attempts`` trials in a row broke the constraints."""
    shown = ", ".join(f"{k}={v}" for k, v in constraints.items())
    return (
        f"study {study!r}: {attempts} trials in a row broke the constraints ({shown}); last one: {last_reason}. "
        "The space (almost) cannot satisfy them: raise constraints.max_params, or lower the space's n_layers / "
        "units / hidden_layers ranges"
    )
