"""`auto` chooses the sampler and pruner of new studies; an existing study resumes with its own."""

from __future__ import annotations

import pytest
from sweeplab_testkit import run

from sweeplab.api import plan_run
from sweeplab.core.errors import UsageError
from sweeplab.spec import parse_spec


def spec_dict(**over):
    data = {
        "study": "made-before-auto", "direction": "maximize", "metric": "score", "trials": 2, "workers": 1,
        "seed": 3, "objective": {"framework": "python", "callable": "sweeplab_user_functions:never_reports",
                                 "epochs": 6},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    data.update(over)
    return data


def test_a_study_resumes_with_its_own_sampler_and_pruner_where_the_spec_says_auto(stores):
    # a study created when no pruner meant none, and with another sampler than auto's
    run(parse_spec(spec_dict(sampler={"name": "random"}, pruner={"name": "none"})), stores, executor="in-process")
    fresh = parse_spec(spec_dict())
    assert (fresh.sampler.name, fresh.pruner.name) == ("tpe", "successive_halving")  # auto's pick for a new study

    resumed, _ = plan_run(spec_dict(), storage=stores["storage"], tracking_uri=stores["tracking"])
    assert (resumed.sampler.name, resumed.pruner.name) == ("random", "none")
    assert resumed.sampler.auto and resumed.pruner.auto

    # a pruner the spec names is still compared, and refused when it changed
    with pytest.raises(UsageError, match=r'pruner.name: "none" -> "median"'):
        plan_run(spec_dict(pruner={"name": "median"}), storage=stores["storage"], tracking_uri=stores["tracking"])
    # a new study from the same spec gets auto's choice
    other, _ = plan_run(spec_dict(study="made-after-auto"), storage=stores["storage"],
                        tracking_uri=stores["tracking"])
    assert (other.sampler.name, other.pruner.name) == ("tpe", "successive_halving")
