"""The dataset registry: what `sweeplab validate` accepts is exactly what loads, with the declared defaults."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest
import sklearn.datasets
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sweeplab.core.errors import DataError, SpecError
from sweeplab.objectives.data import load_dataset
from sweeplab.registry.datasets import DATASETS, MIN_ROWS, resolve_dataset_options
from sweeplab.spec import parse_spec

SEED = 3


def _spec(dataset: dict[str, Any], task: str) -> dict[str, Any]:
    return {
        "study": "d",
        "metric": "val_loss",
        "seed": SEED,
        "objective": {"framework": "torch", "task": task, "dataset": dataset},
        "space": "mlp-small",
    }


def test_the_seed_guides_call_validates_and_loads_with_five_informative_features():
    guide = {"name": "make_classification", "n_samples": 1000, "n_features": 20, "n_classes": 3}
    spec = parse_spec(_spec(guide, "classification"))
    assert spec.objective.dataset is not None and dict(spec.objective.dataset.options) == {
        "n_samples": 1000, "n_features": 20, "n_classes": 3}
    ds = load_dataset(task="classification", name="make_classification", options=spec.objective.dataset.options,
                      seed=spec.seed)
    assert ds.info["options"]["n_informative"] == 5 and ds.info["options"]["n_redundant"] == 2
    assert ds.info["options"]["random_state"] == SEED
    assert ds.n_classes == 3 and len(ds.feature_names) == 20
    assert ds.info["n_rows"] == 1000


def test_the_cli_validates_the_seed_guides_call(tmp_path):
    spec = tmp_path / "guide.yaml"
    spec.write_text(
        "study: guide\nmetric: val_accuracy\nspace: mlp-small\n"
        "objective:\n  framework: torch\n"
        "  dataset: {name: make_classification, n_samples: 1000, n_features: 20, n_classes: 3}\n"
    )
    out = subprocess.run([sys.executable, "-m", "sweeplab.cli", "validate", str(spec)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hints_name_the_real_defaults():
    with pytest.raises(SpecError) as info:
        parse_spec(_spec({"name": "make_classification", "n_features": 2, "n_classes": 4}, "classification"))
    message = str(info.value)
    assert "n_informative=2 (default min(5, n_features))" in message
    assert "n_clusters_per_class=2 (default 2)" in message
    assert "default 2)" not in message.split("n_informative=")[1].split(",")[0]


def test_entries_name_real_scikit_learn_functions_with_real_arguments():
    import inspect

    for entry in DATASETS.values():
        func = getattr(sklearn.datasets, entry.function)
        params = inspect.signature(func).parameters
        assert set(entry.schema.names) <= set(params), entry.name


# ---------------------------------------------------------------------- property
# Half the drawn option sets take every value from the valid sets (cross-rule breaks
# still happen: n_informative against n_features, weights against n_classes); the other
# half break one key: out of range, wrong type or unknown. Valid row counts are large
# enough (200) for the stratified splits of up to 4 classes: class sizes after
# scikit-learn's random label flips are data, not options, and only the loader sees them.
_WRONG_TYPE = ["3", 2.5, True, None, [1]]
_RANDOM_STATE = st.sampled_from([None, 0, 7])
_BAD_RANDOM_STATE = st.sampled_from([-1, 2**32, "seed", 1.5])


def _options(valid: dict[str, Any], invalid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Option sets from ``valid`` strategies, or such a set with one key from ``invalid``."""
    base = st.fixed_dictionaries({}, optional=valid)
    bad = st.sampled_from(sorted(invalid)).flatmap(lambda key: st.tuples(st.just(key), invalid[key]))
    return st.one_of(base, st.tuples(base, bad).map(lambda t: {**t[0], t[1][0]: t[1][1]}))


def _bad_int(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([*values, *_WRONG_TYPE])


_OPTIONS = {
    "make_classification": _options(
        {
            "n_samples": st.sampled_from([200, 240]),
            "n_features": st.integers(1, 8),
            "n_informative": st.integers(1, 6),
            "n_redundant": st.integers(0, 3),
            "n_repeated": st.integers(0, 2),
            "n_classes": st.integers(2, 4),
            "n_clusters_per_class": st.integers(1, 3),
            "weights": st.one_of(st.none(), st.lists(st.sampled_from([0.15, 0.2, 0.3, 0.6]), min_size=1,
                                                     max_size=5)),
            "flip_y": st.sampled_from([0.0, 0.01, 0.5, 1.0]),
            "class_sep": st.sampled_from([0.5, 1.0, 3]),
            "hypercube": st.booleans(),
            "shift": st.sampled_from([0.0, -1.5, None]),
            "scale": st.sampled_from([1.0, 2.0, None]),
            "shuffle": st.booleans(),
            "random_state": _RANDOM_STATE,
        },
        {
            "n_samples": _bad_int(0, -1, MIN_ROWS - 1),
            "n_features": _bad_int(0),
            "n_informative": _bad_int(0),
            "n_redundant": _bad_int(-1),
            "n_repeated": _bad_int(-1),
            "n_classes": _bad_int(0, 1),
            "n_clusters_per_class": _bad_int(0),
            "weights": st.sampled_from([[], [-0.1, 0.5], "balanced", [0.5, "x"], [0.5, math.nan]]),
            "flip_y": st.sampled_from([-0.1, 1.5, math.nan, "low"]),
            "class_sep": st.sampled_from([0.0, -1.0, math.inf]),
            "hypercube": st.sampled_from(["yes", 1]),
            "scale": st.sampled_from([0.0, -1.0]),
            "shuffle": st.sampled_from([1, "no"]),
            "random_state": _BAD_RANDOM_STATE,
            "colour": st.just("red"),
            "return_X_y": st.just(False),
        },
    ),
    "make_regression": _options(
        {
            "n_samples": st.sampled_from([60, 100]),
            "n_features": st.integers(1, 6),
            "n_informative": st.integers(0, 8),
            "n_targets": st.just(1),
            "bias": st.sampled_from([0.0, -3.5]),
            "effective_rank": st.sampled_from([None, 1, 3]),
            "tail_strength": st.sampled_from([0.0, 0.5, 1.0]),
            "noise": st.sampled_from([0.0, 2.0]),
            "shuffle": st.booleans(),
            "random_state": _RANDOM_STATE,
        },
        {
            "n_samples": _bad_int(0, MIN_ROWS - 1),
            "n_features": _bad_int(0),
            "n_informative": _bad_int(-1),
            "n_targets": _bad_int(0, 2),
            "bias": st.sampled_from([math.inf, "x"]),
            "effective_rank": st.sampled_from([0, 2.0]),
            "tail_strength": st.sampled_from([1.5, -0.5]),
            "noise": st.sampled_from([-1.0]),
            "random_state": _BAD_RANDOM_STATE,
            "coef": st.just(True),
        },
    ),
    "digits": _options({"n_class": st.integers(2, 10)}, {"n_class": _bad_int(0, 1, 11), "n_samples": st.just(100)}),
    "diabetes": _options({"scaled": st.booleans()}, {"scaled": st.sampled_from(["yes", 1])}),
    "iris": _options({}, {"n_class": st.just(2), "as_frame": st.just(True)}),
}


def _scikit_learn_accepts(name: str, options: dict[str, Any]) -> bool:
    """Whether scikit-learn itself takes the user's options over the registry's defaults."""
    entry = DATASETS[name]
    args = {**resolve_dataset_options(entry, options, SEED), **options}
    try:
        getattr(sklearn.datasets, entry.function)(**args)
    except (TypeError, ValueError):
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_validate_accepts_a_named_dataset_exactly_when_it_loads(data):
    name = data.draw(st.sampled_from(sorted(_OPTIONS)), label="name")
    options = data.draw(_OPTIONS[name], label="options")
    entry = DATASETS[name]
    try:
        parse_spec(_spec({"name": name, **options}, entry.task))
        accepted, problems = True, []
    except SpecError as exc:
        accepted, problems = False, exc.problems
    try:
        ds = load_dataset(task=entry.task, name=name, options=options, seed=SEED)
        loaded = True
    except DataError:
        loaded = False
    sklearn_takes = _scikit_learn_accepts(name, options)
    event(f"{name}: accepted={accepted}, scikit-learn takes={sklearn_takes}")  # --hypothesis-show-statistics
    assert accepted == (loaded and sklearn_takes), problems
    if not accepted:
        assert problems and all(p.path.startswith("objective.dataset") for p in problems)
        return
    resolved = resolve_dataset_options(entry, options, SEED)
    if entry.source == "synthetic":
        assert ds.info["n_rows"] == resolved["n_samples"]
        assert len(ds.feature_names) == resolved["n_features"]
        assert ds.info["options"]["random_state"] == resolved["random_state"]
    if name == "make_classification":
        assert ds.n_classes == resolved["n_classes"]
    if name == "digits":
        assert ds.n_classes == resolved["n_class"] and len(ds.feature_names) == 64
