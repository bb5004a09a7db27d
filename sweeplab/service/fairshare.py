"""Sharing one pool of workers between the studies a service runs, by weight.

Each study's trial loop asks its :class:`StudyShare` (a
:class:`~sweeplab.search.loop.TrialGate`) before starting a trial. A free slot goes to
the asking study unless another study that wants one too would hold fewer slots per
unit of weight with it than the asker would; that one gets it on its next pass (a loop
passes at least once a second). A study "wants" a slot while it holds fewer than its
own ``workers`` and has asked in the last :data:`WANT_SECONDS` (a loop asks only when a
trial is due). So with a long study holding the whole pool, a study submitted later gets
the next slot that frees, and from then on both progress, each with a share of the pool
proportional to its ``priority``; a slot no needier study can use is never left idle.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

WANT_SECONDS = 3.0
"""How long after its last request a study counts as wanting a slot (loops ask at least every second)."""


@dataclass
class _Holder:
    weight: float
    cap: int  # the study's own `workers`: it never asks for more
    held: int = 0
    asked_at: float = 0.0  # when it last asked for a slot


class FairShare:
    """``slots`` trial slots shared by weight between the studies that join (thread-safe)."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a pool needs at least one slot, got {slots}")
        self.slots = slots
        self._lock = threading.Lock()
        self._holders: dict[str, _Holder] = {}

    def join(self, study: str, weight: float, cap: int) -> StudyShare:
        """The gate of ``study`` (weight > 0; ``cap``: its ``workers``); :meth:`StudyShare.leave` when it ends."""
        if not weight > 0:
            raise ValueError(f"a study's weight must be > 0, got {weight}")
        with self._lock:
            self._holders[study] = _Holder(weight, max(1, cap))
        return StudyShare(self, study)

    def held(self) -> dict[str, int]:
        """Slots held now, by study."""
        with self._lock:
            return {name: h.held for name, h in self._holders.items()}

    def _try_acquire(self, study: str) -> bool:
        now = time.monotonic()
        with self._lock:
            me = self._holders[study]
            me.asked_at = now
            free = self.slots - sum(h.held for h in self._holders.values())
            if free > 0 and not self._someone_needier(study, me, now):
                me.held += 1
                return True
            return False

    def _someone_needier(self, study: str, me: _Holder, now: float) -> bool:
        mine = (me.held + 1) / me.weight
        return any(name != study and h.held < h.cap and now - h.asked_at < WANT_SECONDS
                   and (h.held + 1) / h.weight < mine
                   for name, h in self._holders.items())

    def _release(self, study: str) -> None:
        with self._lock:
            holder = self._holders.get(study)
            if holder is not None and holder.held > 0:
                holder.held -= 1

    def _leave(self, study: str) -> None:
        with self._lock:
            self._holders.pop(study, None)


class StudyShare:
    """One study's gate on a :class:`FairShare` (see :class:`~sweeplab.search.loop.TrialGate`)."""

    def __init__(self, pool: FairShare, study: str) -> None:
        self.pool, self.study = pool, study

    def try_acquire(self) -> bool:
        return self.pool._try_acquire(self.study)

    def release(self) -> None:
        self.pool._release(self.study)

    def leave(self) -> None:
        """The study ended: give back whatever it still holds."""
        self.pool._leave(self.study)
