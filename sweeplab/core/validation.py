"""How a study validates its trials: a holdout split or K-fold cross-validation (``objective.validation``).

One declaration of the modes, their defaults and the ``auto`` rule, read by the spec
validator (:mod:`sweeplab.spec`), the data loader (:mod:`sweeplab.objectives.data`, which
cuts the folds) and the objectives (which train one model per fold).

- ``holdout`` (the default): one validation part of ``validation_split`` of the rows.
- ``{kfold: K, repeats: R}``: the rows left after the test split are cut into K folds
  (stratified by class for classification, shuffled plain K-fold for regression), R times
  with different shuffles, seeded by the study's ``seed``: every trial sees the same folds.
  A trial trains K * R models, so it costs K * R holdout trials.
- ``auto``: K-fold with :data:`AUTO_KFOLD` folds when fewer than :data:`AUTO_MAX_ROWS` rows
  are left after the test split (a small table, where one validation part is too small to
  pick a model on), holdout otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AUTO",
    "AUTO_KFOLD",
    "AUTO_MAX_ROWS",
    "DEFAULT_REPEATS",
    "HOLDOUT",
    "KFOLD",
    "MIN_KFOLD",
    "VALIDATION_KEYS",
    "VALIDATION_MODES",
    "Validation",
]

HOLDOUT = "holdout"
KFOLD = "kfold"
AUTO = "auto"
VALIDATION_MODES = (HOLDOUT, KFOLD, AUTO)
"""``objective.validation``: ``holdout``, ``auto``, or a mapping ``{kfold: K, repeats: R}``."""
VALIDATION_KEYS = ("kfold", "repeats")
"""Keys of the mapping form of ``objective.validation``."""

AUTO_KFOLD = 5
"""Folds ``validation: auto`` uses on a small table."""
AUTO_MAX_ROWS = 2000
"""``validation: auto`` cross-validates when fewer rows than this are left after the test split."""
DEFAULT_REPEATS = 1
"""``repeats`` when ``{kfold: K}`` does not give it."""
MIN_KFOLD = 2
"""The fewest folds K-fold may have."""


@dataclass(frozen=True)
class Validation:
    """``objective.validation`` as validated: ``mode`` one of :data:`VALIDATION_MODES`.

    ``kfold`` (>= 2) and ``repeats`` (>= 1) mean something for mode ``kfold`` only (0 and 1
    otherwise). :meth:`resolve` turns ``auto`` into ``holdout`` or ``kfold`` once the
    number of rows is known.
    """

    mode: str = HOLDOUT
    kfold: int = 0
    repeats: int = DEFAULT_REPEATS

    @property
    def n_folds(self) -> int:
        """Models a trial trains: ``kfold * repeats`` for K-fold, 1 for holdout (0 for unresolved auto)."""
        if self.mode == KFOLD:
            return self.kfold * self.repeats
        return 1 if self.mode == HOLDOUT else 0

    def resolve(self, n_rows: int, smallest_class: int | None = None) -> Validation:
        """The mode used for ``n_rows`` rows left after the test split.

        ``auto`` becomes K-fold with :data:`AUTO_KFOLD` folds (fewer when the smallest
        class, ``smallest_class`` rows, cannot fill that many stratified folds, but at
        least 2) below :data:`AUTO_MAX_ROWS` rows, else holdout; the other modes stay.
        """
        if self.mode != AUTO:
            return self
        if n_rows >= AUTO_MAX_ROWS:
            return Validation(HOLDOUT)
        k = AUTO_KFOLD if smallest_class is None else max(MIN_KFOLD, min(AUTO_KFOLD, smallest_class))
        return Validation(KFOLD, kfold=k, repeats=DEFAULT_REPEATS)

    def to_yaml(self) -> str | dict[str, int]:
        """The canonical spec form: ``holdout``, ``auto`` or ``{kfold: K, repeats: R}``."""
        if self.mode == KFOLD:
            return {"kfold": self.kfold, "repeats": self.repeats}
        return self.mode
