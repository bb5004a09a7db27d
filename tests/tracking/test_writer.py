"""TrackingWriter: queued MLflow operations run in order; wait_idle tells when all queued so far are done."""

from __future__ import annotations

import threading

from sweeplab.tracking.writer import TrackingWriter


def test_wait_idle_waits_for_every_queued_operation_and_the_writer_keeps_running():
    writer = TrackingWriter(max_backoff=0.01)
    release = threading.Event()
    done: list[str] = []
    writer.submit("slow", lambda: (release.wait(5), done.append("slow")))
    writer.submit("fast", lambda: done.append("fast"))
    assert writer.wait_idle(timeout=0.2) is False  # "slow" is still blocked
    release.set()
    assert writer.wait_idle(timeout=5) is True
    assert done == ["slow", "fast"]

    writer.submit("after", lambda: done.append("after"))  # still accepting work after wait_idle
    assert writer.close(timeout=5) is True
    assert done == ["slow", "fast", "after"]


def test_wait_idle_counts_an_operation_that_was_given_up():
    writer = TrackingWriter(max_backoff=0.01)

    def rejected() -> None:
        raise ValueError("400 bad request")  # not transient: given up after a few attempts

    writer.submit("rejected", rejected)
    assert writer.wait_idle(timeout=10) is True
    assert writer.undelivered == ["rejected"]
    writer.close(timeout=5)


def test_a_request_stuck_inside_one_call_counts_as_stalled_until_it_returns():
    """MLflow's HTTP client retries inside one call during an outage: the writer is not
    `retrying` then, but callers must still see that waiting on it would block."""
    import time

    writer = TrackingWriter(max_backoff=0.01)
    release = threading.Event()
    writer.submit("stuck", lambda: release.wait(5))
    time.sleep(0.3)
    assert writer.retrying is False
    assert writer.stalled(after=0.1) is True and writer.stalled(after=10.0) is False
    release.set()
    assert writer.wait_idle(timeout=5) is True
    assert writer.stalled(after=0.0) is False
    writer.close(timeout=5)


def test_a_held_writer_queues_until_released_then_delivers_in_order_and_says_it_is_catching_up():
    """A tracker queues trials' runs before MLflow is open (a held writer): nothing runs until
    the release, then everything in order; until that backlog is delivered the writer says it
    is catching up (the loop does not wait on run ids then)."""
    writer = TrackingWriter(max_backoff=0.01, held=True)
    done: list[int] = []
    gate = threading.Event()
    writer.submit("first", lambda: (gate.wait(5), done.append(1)))
    writer.submit("second", lambda: done.append(2))
    assert writer.held and not writer.catching_up
    assert writer.wait_idle(timeout=0.2) is False and done == []  # held: nothing ran
    writer.release()
    assert not writer.held and writer.catching_up  # the backlog is being delivered
    gate.set()
    assert writer.wait_idle(timeout=5) is True and done == [1, 2]
    assert not writer.catching_up
    writer.submit("third", lambda: done.append(3))
    assert writer.close(timeout=5) is True and done == [1, 2, 3]


def test_a_writer_closed_or_discarded_while_held_delivers_nothing_and_stops_at_once():
    """The parent run never opened (the study stopped): what was queued is reported as
    undelivered by close, dropped by discard, and neither waits for the retries' deadline."""
    done: list[str] = []
    writer = TrackingWriter(max_backoff=0.01, held=True)
    writer.submit("create run of trial 0", lambda: done.append("create"))
    writer.submit("finish run of trial 0", lambda: done.append("finish"))
    assert writer.close(timeout=60) is False
    assert writer.undelivered == ["create run of trial 0", "finish run of trial 0"] and done == []
    assert not writer._thread.is_alive()
    dropped = TrackingWriter(max_backoff=0.01, held=True)
    dropped.submit("create run of trial 1", lambda: done.append("create"))
    dropped.discard()
    dropped._thread.join(timeout=5)
    assert not dropped._thread.is_alive() and done == []
