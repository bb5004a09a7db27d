"""The private dependency APIs are used only with the versions they were tested with.

Each check takes the version to compare as a parameter, so these tests pass fake
versions instead of installing other releases (or patching what the check reads).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from sweeplab.core import compat

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


def _pinned(package: str) -> str:
    match = re.search(rf"^{package}==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE | re.IGNORECASE)
    assert match, f"{package} is not pinned in {CONSTRAINTS}"
    return match.group(1)


@pytest.mark.parametrize(("package", "tested"), [("optuna", compat.TESTED_OPTUNA), ("ray", compat.TESTED_RAY)])
def test_the_pinned_and_installed_versions_are_the_tested_ones(package, tested):
    """constraints.txt pins a tested version, and the tests run with it: what they check is
    what a user installing with the constraints gets (the held storage, the early monitor stop)."""
    assert _pinned(package) in tested
    assert compat.installed_version(package) in tested


def test_a_tested_optuna_uses_the_held_storage_without_a_word(caplog):
    with caplog.at_level(logging.WARNING, logger="sweeplab.compat"):
        assert compat.held_storage_usable(compat.TESTED_OPTUNA[0], environ={}) is True
    assert caplog.records == []


def test_an_untested_optuna_falls_back_to_optunas_storage_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="sweeplab.compat"):
        assert compat.held_storage_usable("5.99.0", environ={}) is False
        assert compat.held_storage_usable("5.99.0", environ={}) is False  # said once per process
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    for part in ("optuna 5.99.0 is installed", f"tested with optuna {compat.TESTED_OPTUNA[0]}",
                 "uses Optuna's own storage instead", f"optuna=={compat.TESTED_OPTUNA[-1]}", "constraints.txt",
                 f"{compat.ALLOW_UNTESTED_ENV}=1"):
        assert part in message


def test_the_variable_allows_an_untested_optuna_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="sweeplab.compat"):
        assert compat.held_storage_usable("6.0.0", environ={compat.ALLOW_UNTESTED_ENV: "1"}) is True
    assert len(caplog.records) == 1 and "used untested" in caplog.records[0].getMessage()


def test_a_missing_distribution_is_not_a_tested_version():
    check = compat.check_version("no-such-distribution-xyz", ("1.0",), environ={})
    assert check.installed == "not installed" and check.use_private is False


@pytest.mark.parametrize(("version", "environ", "usable"), [
    (compat.TESTED_RAY[0], {}, True),
    ("2.61.0", {}, False),
    ("3.0.0", {compat.ALLOW_UNTESTED_ENV: "1"}, True),
    ("3.0.0", {compat.ALLOW_UNTESTED_ENV: "0"}, False),
])
def test_rays_private_shutdown_only_on_tested_versions(version, environ, usable):
    assert compat.private_ray_shutdown_usable(version, environ) is usable


def test_samplers_are_reseeded_in_place_only_with_a_tested_optuna():
    assert compat.sampler_reseed_usable(compat.TESTED_OPTUNA[0], environ={}) is True
    assert compat.sampler_reseed_usable("5.99.0", environ={}) is False
    assert compat.sampler_reseed_usable("5.99.0", environ={compat.ALLOW_UNTESTED_ENV: "1"}) is True
