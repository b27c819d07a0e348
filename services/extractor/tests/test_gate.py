"""BatchGate: how a stop waits for the micro-batch in flight (no Spark needed)."""

from __future__ import annotations

import threading
import time

from questlog_extractor.shutdown import BatchGate


def test_close_waits_for_the_batch_in_flight_to_finish_writing():
    gate, written, release = BatchGate(), [], threading.Event()

    def slow_write(batch, batch_id):
        release.wait(5)
        written.append(batch_id)

    t = threading.Thread(target=gate.run, args=(slow_write, "df", 7), daemon=True)
    t.start()
    time.sleep(0.1)
    assert gate.close(0.2) is False  # still writing
    release.set()
    assert gate.close(2.0) is True
    t.join(2)
    assert written == [7]
    assert gate.parked is None


def test_a_batch_arriving_after_close_is_parked_never_written_never_returned():
    gate, written = BatchGate(), []
    assert gate.close(0.1) is True  # nothing in flight
    t = threading.Thread(
        target=gate.run, args=(lambda b, i: written.append(i), "df", 8), daemon=True
    )
    t.start()
    t.join(0.5)
    # Returning would let Spark commit the batch's offsets with nothing written.
    assert t.is_alive()
    assert written == []
    assert gate.parked == 8


def test_a_failed_write_frees_the_gate_and_propagates():
    gate = BatchGate()

    def failing(batch, batch_id):
        raise ValueError("boom")

    try:
        gate.run(failing, "df", 1)
    except ValueError:
        pass
    else:
        raise AssertionError("the write's error must reach Spark")
    assert gate.close(0.1) is True
