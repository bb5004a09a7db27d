"""``objective.validation`` in the study spec: holdout (default), ``{kfold: K, repeats: R}``, ``auto``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sweeplab.core.errors import SpecError
from sweeplab.core.validation import AUTO, DEFAULT_REPEATS, HOLDOUT, KFOLD, Validation
from sweeplab.spec import parse_spec

BASE: dict[str, Any] = {
    "study": "cv",
    "metric": "val_accuracy",
    "objective": {"framework": "torch", "dataset": {"name": "wine"}, "epochs": 5},
    "space": "mlp-grid",
}


def spec_with(**objective: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["objective"].update(objective)
    return data


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return [(p.path, p.message) for p in info.value.problems]


def test_holdout_is_the_default_and_its_stored_form_is_unchanged() -> None:
    s = parse_spec(BASE)
    assert s.objective.validation == Validation(HOLDOUT)
    assert "validation" not in s.objective.to_dict() and s.objective.to_dict()["validation_split"] == 0.2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"kfold": 5}, Validation(KFOLD, kfold=5, repeats=DEFAULT_REPEATS)),
        ({"kfold": 3, "repeats": 2}, Validation(KFOLD, kfold=3, repeats=2)),
        ("auto", Validation(AUTO)),
        ("holdout", Validation(HOLDOUT)),
    ],
)
def test_validation_forms_parse_and_round_trip(value: Any, expected: Validation) -> None:
    s = parse_spec(spec_with(validation=value))
    assert s.objective.validation == expected
    plain = s.to_dict()
    assert parse_spec(json.loads(json.dumps(plain))) == s
    if expected.mode == KFOLD:
        assert plain["objective"]["validation"] == {"kfold": expected.kfold, "repeats": expected.repeats}
        assert "validation_split" not in plain["objective"]  # not used by K-fold


def test_kfold_with_validation_split_is_refused_with_the_reason() -> None:
    assert problems(spec_with(validation={"kfold": 4}, validation_split=0.3)) == [(
        "objective.validation_split",
        "is not used with objective.validation kfold (each fold's validation part is 1/4 of the rows left after "
        "the test split); remove validation_split, or use validation: holdout")]


def test_auto_keeps_validation_split_for_when_it_picks_holdout() -> None:
    s = parse_spec(spec_with(validation="auto", validation_split=0.3))
    assert s.objective.validation_split == 0.3 and s.objective.validation.mode == AUTO


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({"kfold": 1}, "objective.validation.kfold", "must be >= 2, got 1"),
        ({"kfold": 3, "repeats": 0}, "objective.validation.repeats", "must be >= 1, got 0"),
        ({"kfold": "five"}, "objective.validation.kfold", "must be an integer, got str 'five'"),
        ({"repeats": 2}, "objective.validation.kfold", "required: the number of folds (>= 2), e.g. {kfold: 5}"),
        ({"kfold": 3, "folds": 2}, "objective.validation", "unknown key `folds`; allowed: kfold, repeats"),
        ("kfold", "objective.validation", "kfold needs its number of folds: {kfold: 5}, got 'kfold'"),
        ("cv", "objective.validation",
         "must be holdout, auto or {kfold: K, repeats: R} (K >= 2, R >= 1), got 'cv'"),
        (5, "objective.validation",
         "must be holdout, auto or {kfold: K, repeats: R} (K >= 2, R >= 1), got int 5"),
    ],
)
def test_bad_validation_is_reported_at_its_yaml_path(value: Any, path: str, message: str) -> None:
    assert (path, message) in problems(spec_with(validation=value))


def test_cross_validation_needs_a_dataset() -> None:
    data = copy.deepcopy(BASE)
    data["metric"] = "score"
    data["objective"] = {"framework": "python", "callable": "mod:train", "validation": {"kfold": 3}}
    assert problems(data) == [("objective.validation",
                               "kfold cuts its folds from objective.dataset, and the spec names none; set "
                               "objective.dataset or remove objective.validation")]
