"""What every layer shares: the error types, value checks, attribute and tag names, and the
records that cross layers. Imports nothing else of sweeplab, and nothing heavy."""

from __future__ import annotations
