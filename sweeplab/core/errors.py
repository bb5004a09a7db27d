"""The typed exceptions of sweeplab, all under :class:`SweeplabError`.

Each error carries the process exit code the CLI uses for it: 2 for bad input
(spec, flags, data), 1 for anything else. Messages restate the rule and echo the
offending value, so a user can fix the problem without reading the source.
"""

from __future__ import annotations

from dataclasses import dataclass

RAY_TOKEN_HINT = ("if the cluster uses Ray's token authentication, this shell needs RAY_AUTH_MODE=token and the "
                  "cluster's token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token)")
"""What a driver refused by a cluster needs when token authentication is on (Ray's own error
only says it failed to connect; its log lines say ``InvalidAuthToken``)."""


class SweeplabError(Exception):
    """Base of every error sweeplab raises on purpose."""

    exit_code: int = 1


class UsageError(SweeplabError):
    """Bad command-line input: conflicting flags, bad values."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem in a spec: the YAML path of the bad key and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(SweeplabError, ValueError):
    """A study spec that breaks one or more rules. Holds every problem at once.

    Also a ValueError, so that Python callers (``sweeplab.run``) can catch it as the bad
    argument it is.
    """

    exit_code = 2

    def __init__(self, problems: list[Problem], source: str = "spec") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: {len(self.problems)} {noun}:\n{lines}")


class ResourceError(SpecError):
    """A spec whose per-trial ``resources`` no node of the Ray cluster has (a GPU on a
    cluster without one, more CPUs than any node, a custom resource nobody offers).

    Raised before any trial starts, instead of leaving the trials queued forever. The
    message lists every missing resource with its spec path, then each node's resources.
    """

    def __init__(self, problems: list[Problem], source: str = "spec", cluster: str = "") -> None:
        super().__init__(problems, source)
        self.cluster = cluster
        if cluster:
            self.args = (f"{self.args[0]}\n{cluster}",)


class DataError(SweeplabError):
    """A dataset that cannot be used: missing file or column, NaN, strings, one class."""

    exit_code = 2


class StudyNotFoundError(SweeplabError):
    """A study name that the configured Optuna storage does not hold."""

    exit_code = 1


class StorageError(SweeplabError):
    """An Optuna storage or MLflow tracking store that cannot be reached or used."""

    exit_code = 1


class ObjectiveError(SweeplabError):
    """An objective that returned something other than finite numbers."""

    exit_code = 1
