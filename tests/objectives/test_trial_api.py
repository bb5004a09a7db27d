"""The trial object users' functions get, on its own (no Ray): reports, pruning, checkpoints, files, loading."""

from __future__ import annotations

import random
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from sweeplab.core.errors import ObjectiveError
from sweeplab.objectives import Trial, TrialContext, TrialPruned
from sweeplab.objectives.python_callable import CallableObjective, load_callable


class Pruner:
    """A reporter that prunes from epoch ``at`` on, and records what it got."""

    def __init__(self, at: int = 10**9) -> None:
        self.at = at
        self.got: list[tuple[int, dict]] = []

    def report(self, epoch, metrics):
        self.got.append((epoch, dict(metrics)))
        if epoch >= self.at:
            raise TrialPruned(epoch)


def make(reporter=None, *, prunable=True, metric_names=("score",), options=None, **kw):
    settings = SimpleNamespace(epochs=4, options=options or {"k": [1, 2]})
    return Trial(params={"x": 0.5}, dataset=None, seed=123, reporter=reporter or Pruner(), settings=settings,
                 metric_names=metric_names, prunable=prunable, **kw)


def test_trial_context_is_the_trial():
    assert TrialContext is Trial


def test_attributes_of_a_plain_trial():
    trial = make(trial_number=7, attempt=1, cpus=2.0)
    assert (trial.number, trial.attempt, trial.seed, trial.cpus, trial.gpus) == (7, 1, 123, 2.0, 0.0)
    assert trial.params == {"x": 0.5} and trial.epochs == 4 and trial.metric == "score"
    assert trial.device == "cpu"  # no GPU share
    trial.options["k"].append(3)  # a copy: the spec's options are not changed
    assert make().options == {"k": [1, 2]}


def test_report_a_number_means_the_study_metric_and_a_mapping_is_sent_as_it_is():
    reporter = Pruner()
    trial = make(reporter, metric_names=("val_accuracy", "n_params"))
    trial.report(1, 0.5)
    trial.report(2, {"val_accuracy": np.float32(0.75), "loss": 1})
    assert reporter.got == [(1, {"val_accuracy": 0.5}), (2, {"val_accuracy": 0.75, "loss": 1.0})]
    assert trial.warnings() == []


@pytest.mark.parametrize("value, match", [("high", "the value must be a number, got str"),
                                          ({"score": None}, "metric 'score' must be a number, got NoneType"),
                                          (True, "must be a number, got bool")])
def test_report_refuses_what_is_not_a_number(value, match):
    with pytest.raises(TypeError, match=match):
        make().report(1, value)


def test_epochs_must_increase_and_the_error_names_both():
    trial = make()
    trial.report(5, 0.1)
    with pytest.raises(ValueError, match="epoch 3 came after epoch 5"):
        trial.report(3, 0.2)
    with pytest.raises(ValueError, match="epoch 5 came after epoch 5"):
        trial.report(5, 0.2)
    with pytest.raises(TypeError, match="epoch must be an integer"):
        trial.report(6.5, 0.2)


def test_pruned_escapes_except_exception_and_should_prune_tells_the_last_decision():
    trial = make(Pruner(at=2))
    caught = []
    with pytest.raises(TrialPruned) as info:
        for epoch in (1, 2, 3):
            try:
                trial.report(epoch, 0.1)
            except Exception as exc:  # what a careless loop does
                caught.append(exc)
    assert caught == [] and info.value.epoch == 2 and trial.should_prune()
    assert not issubclass(TrialPruned, Exception)


def test_asking_instead_of_raising():
    trial = make(Pruner(at=2))
    assert trial.should_prune() is False
    trial.report(1, 0.1, raise_pruned=False)
    assert trial.should_prune() is False
    trial.report(2, 0.1, raise_pruned=False)  # no exception
    assert trial.should_prune() is True and trial.pruned_and_swallowed is None


def test_a_report_without_the_study_metric_warns_once_naming_what_was_reported():
    trial = make()
    trial.report(1, {"loss": 0.3, "acc": 0.5})
    trial.report(2, {"loss": 0.2})
    [warning] = trial.warnings()
    assert "pruning is off for this trial" in warning and "'score'" in warning and "acc, loss" in warning
    assert make(prunable=False).warnings() == []  # no pruner: nothing lost
    silent = make()
    [warning] = silent.warnings()
    assert "never reported the study metric 'score'" in warning


def test_a_checkpoint_that_cannot_be_pickled_is_refused_at_once():
    trial = make()
    assert trial.restore() is None  # a trial outside a study has no earlier attempt
    trial.checkpoint({"epoch": 3, "weights": np.arange(3)})
    with pytest.raises(Exception, match=r"pickle|Can't"):
        trial.checkpoint(lambda: 1)


def test_checkpoint_goes_through_the_hooks():
    from sweeplab.objectives.trial import TrialHooks

    store: dict[str, bytes] = {}
    hooks = TrialHooks(save_checkpoint=lambda data: store.__setitem__("c", data),
                       load_checkpoint=lambda: store.get("c"))
    make(hooks=hooks).checkpoint({"epoch": 2})
    assert make(hooks=hooks).restore() == {"epoch": 2}


def test_log_artifact_reads_files_and_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.svg").write_text("<svg/>")
    trial = make()
    trial.log_artifact(tmp_path / "notes.txt")
    trial.log_artifact(tmp_path / "plots", name="figures")
    assert trial.artifacts == {"notes.txt": b"hello", "figures/a.svg": b"<svg/>"}
    with pytest.raises(FileNotFoundError, match="no file or folder"):
        trial.log_artifact(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="relative path inside the run"):
        trial.log_artifact(tmp_path / "notes.txt", name="../x")
    with pytest.raises(RuntimeError, match="only works inside a sweeplab study"):
        trial.log_model(object())


def test_prepare_seeds_random_and_numpy_from_the_trial_seed():
    trial = make()
    trial.prepare()
    assert random.random() == random.Random(123).random()
    assert np.random.rand() == np.random.RandomState(123).rand()


def test_a_function_object_is_an_objective_and_its_return_is_checked():
    def train(trial):
        trial.report(1, 0.4)
        return 0.4

    assert CallableObjective(train).run(make()) == {"score": 0.4}
    with pytest.raises(ObjectiveError, match=r"returned str 'done'; return the study metric 'score' as a number"):
        CallableObjective(lambda trial: "done").run(make())
    with pytest.raises(ObjectiveError, match=r"returned NoneType None \(is a `return` missing\?\)"):
        CallableObjective(lambda trial: None).run(make())
    with pytest.raises(ObjectiveError, match=r"one number \(0.5\), but the study has 2 metrics \(a, b\)"):
        CallableObjective(lambda trial: 0.5).run(make(metric_names=("a", "b")))
    with pytest.raises(ValueError, match="sweeplab calls it with one argument, the trial"):
        CallableObjective(lambda: 1)


def test_a_file_callable_is_imported_with_its_folder_on_the_path(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "trial_api_helpers.py").write_text("FACTOR = 3\n")
    (code / "trial_api_train.py").write_text(textwrap.dedent("""
        from trial_api_helpers import FACTOR

        def train(trial):
            return FACTOR * trial.params["x"]
    """))
    fn = load_callable(f"{code / 'trial_api_train.py'}:train")
    assert fn(make()) == 1.5
    with pytest.raises(ValueError, match=r"has no attribute 'trian'.*\(did you mean `train`\?\)"):
        load_callable(f"{code / 'trial_api_train.py'}:trian")
    with pytest.raises(ValueError, match=r"does not exist.*\(did you mean `trial_api_train.py`\?\)"):
        load_callable(f"{code / 'trial_api_trian.py'}:train")
