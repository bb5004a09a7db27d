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
