"""The in-flight gauges: what a dashboard shows of how close the workers are to a 503."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from prometheus_client import REGISTRY

from questlog_api.sink import InFlight, MemorySink


def _in_flight() -> float:
    return REGISTRY.get_sample_value("questlog_api_events_in_flight") or 0.0


def test_the_gauge_follows_acquire_and_release():
    before = _in_flight()
    slots = InFlight(10)
    assert slots.try_acquire(4)
    assert _in_flight() == before + 4
    assert not slots.try_acquire(7)  # refused: the gauge does not move
    assert _in_flight() == before + 4
    slots.release(1)
    assert _in_flight() == before + 3
    slots.release(50)  # more than held: only what was held is given back
    assert _in_flight() == before
    assert slots.used == 0
    assert REGISTRY.get_sample_value("questlog_api_events_in_flight_limit") == 10


def test_a_send_leaves_nothing_in_flight_and_metrics_export_both(client, sink: MemorySink):
    before = _in_flight()
    r = client.post(
        "/v1/events",
        json={"event_type": "join_guild", "player_id": "p", "properties": {"guild_id": "g"}},
    )
    assert r.status_code == 202
    assert _in_flight() == before
    text = client.get("/metrics").get_data(as_text=True)
    assert "\nquestlog_api_events_in_flight " in text
    assert "\nquestlog_api_events_in_flight_limit " in text


WORKER = textwrap.dedent("""
    import os, sys
    from questlog_api.sink import InFlight
    slots = InFlight(100)
    assert slots.try_acquire(int(sys.argv[1]))
    print(os.getpid())
""")


def test_multiprocess_sums_the_live_workers_only(tmp_path):
    """gunicorn's workers each write their own file; /metrics adds those of live workers
    (child_exit marks a dead one, whose events in flight died with it)."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    pids = [
        int(
            subprocess.run(
                [sys.executable, "-c", WORKER, str(n)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for n in (3, 4)
    ]  # two workers that exited holding 3 and 4 events
    read = textwrap.dedent("""
        import sys
        from prometheus_client import multiprocess
        from questlog_service.metrics import render
        for pid in sys.argv[1:]:
            multiprocess.mark_process_dead(int(pid))
        print(render()[0].decode())
    """)

    def exported(*dead: int) -> dict[str, float]:
        out = subprocess.run(
            [sys.executable, "-c", read, *map(str, dead)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return {
            line.split()[0]: float(line.split()[1])
            for line in out.splitlines()
            if line.startswith("questlog_api_events_in_flight")
        }

    assert exported() == {
        "questlog_api_events_in_flight": 7.0,
        "questlog_api_events_in_flight_limit": 200.0,
    }
    assert exported(pids[0]) == {
        "questlog_api_events_in_flight": 4.0,
        "questlog_api_events_in_flight_limit": 100.0,
    }
