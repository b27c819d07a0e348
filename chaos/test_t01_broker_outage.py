"""T1 broker outage during load: SIGKILL the real broker at about 30% of the run and start
it again, then freeze it (SIGSTOP) for longer than the API's acknowledgement wait and
SIGCONT it. Clients retry refused events with the same event ids.

Invariants: lost = 0; no 2xx while Kafka cannot acknowledge; every refusal is a 503 with
Retry-After, the persistence (not_persisted / possibly_persisted) and the event ids; no
"not_persisted" event lands; every event is stored under exactly one id (Kafka read
directly: distinct ids per event; extra copies of an id are what the extractor's dedup
removes, proven in T3); /readyz turns 503 during each outage and 200 after; worker memory
stays bounded.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from questlog_chaos.api_rig import (
    Api,
    Load,
    Monitor,
    Tally,
    new_topic,
    plan,
    read_topic,
    rig_broker,
)
from questlog_chaos.report import Result, spread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RSS_LIMIT_MB = 400  # a worker's resident memory; the in-flight cap bounds what it holds


def _window(span, origin: float) -> str:
    return "none" if span is None else f"{span[0] - origin:.1f}-{span[1] - origin:.1f} s"


@pytest.mark.sabotage("api_ack_skip")
def test_t01_broker_outage(
    scale, record, sabotaged, sabotage_env, request, tmp_path_factory, tmp_path
):
    rng = random.Random(scale.seed)
    events = scale.pick(500, 4000)
    rate = scale.pick(40.0, 150.0)  # requests started per second
    produce_timeout = scale.pick(2.5, 5.0)
    freeze_s = produce_timeout + scale.pick(2.5, 4.0)
    broker = rig_broker(request, tmp_path_factory)
    result = Result(
        "T1",
        "broker outage under load (SIGKILL + restart, SIGSTOP + SIGCONT)",
        load=f"{scale.runs} run(s) x {events} events at ~{rate:.0f} req/s, "
        "8 clients (legacy GET id header / id param / POST)",
        faults=f"SIGKILL broker at 30% then restart; SIGSTOP {freeze_s:.1f} s "
        f"(> ack wait {produce_timeout:.1f} s) then SIGCONT",
    )
    landed_503, removed, kill_windows, freeze_windows = [], [], [], []
    peak_rss, refused, totals = [], [], []
    for run in range(scale.runs):
        topic = new_topic(broker, f"t01-{run}")
        tag = f"t1r{run}-"
        api = Api(
            tmp_path / f"api-{run}",
            broker.bootstrap,
            topic,
            sabotage_env,
            produce_timeout_s=produce_timeout,
        )
        frozen = False
        with api, Monitor(api) as monitor:
            load = Load(
                api.port,
                plan(rng, tag.rstrip("-"), events),
                clients=8,
                rate=rate,
                give_up_s=events / rate + 120,
            ).start()
            try:
                load.wait_progress(0.3, timeout_s=120)
                t_kill = time.monotonic()
                broker.kill()
                time.sleep(rng.uniform(1.0, 3.0))
                broker.start()
                t_back = time.monotonic()
                time.sleep(scale.pick(4.0, 8.0))
                os.kill(broker.pid, signal.SIGSTOP)
                frozen = True
                t_stop = time.monotonic()
                time.sleep(freeze_s)
                os.kill(broker.pid, signal.SIGCONT)
                frozen = False
                t_cont = time.monotonic()
            finally:
                if frozen:
                    os.kill(broker.pid, signal.SIGCONT)
                if not broker.running():
                    broker.start()
            finished = load.join(timeout_s=events / rate + 150)
            result.check(finished, "the load did not finish in time")
            time.sleep(1.0)  # one more readiness probe after the last request
        # the API has stopped (SIGTERM: flushed), so late deliveries have landed
        tally = Tally(load, read_topic(broker.bootstrap, topic, prefix=tag))
        tally.check_common(result)
        during_kill = tally.acked_within(t_kill + 0.05, t_back)
        during_freeze = tally.acked_within(t_stop + 0.05, t_cont)
        result.check(during_kill == 0, f"{during_kill} 2xx while the broker was dead")
        result.check(during_freeze == 0, f"{during_freeze} 2xx while the broker was frozen")
        kill_ready = monitor.not_ready_within(t_kill, t_back + 1)
        freeze_ready = monitor.not_ready_within(t_stop, t_cont + 1)
        result.check(kill_ready is not None, "/readyz never answered 503 while the broker was dead")
        result.check(
            freeze_ready is not None, "/readyz never answered 503 while the broker was frozen"
        )
        result.check(
            monitor.ready_after(t_cont) is not None,
            "/readyz did not answer 200 again after SIGCONT",
        )
        result.check(
            monitor.peak_rss_mb < RSS_LIMIT_MB,
            f"a worker reached {monitor.peak_rss_mb:.0f} MiB (> {RSS_LIMIT_MB})",
        )
        result.check(
            tally.statuses.get(503, 0) > 0,
            "no 503 at all: the outage was not felt, the scenario tested nothing",
        )
        if run == 0:
            kill_windows.append(
                f"SIGKILL outage 0-{t_back - t_kill:.1f} s: 503s "
                f"{_window(tally.refusals_within(t_kill, t_stop), t_kill)}, /readyz 503 "
                f"{_window(kill_ready, t_kill)}"
            )
            freeze_windows.append(
                f"SIGSTOP 0-{t_cont - t_stop:.1f} s: 503s "
                f"{_window(tally.refusals_within(t_stop, t_cont + produce_timeout), t_stop)}"
                f", /readyz 503 {_window(freeze_ready, t_stop)}"
            )
        landed_503.append(sum(tally.refused_landed.values()))
        removed.append(tally.removed_by_dedup)
        peak_rss.append(monitor.peak_rss_mb)
        refused.append(tally.persistence)
        totals.append(tally)
    last = totals[-1]
    result.inputs = (
        f"{sum(t.events for t in totals)} events, "
        f"{sum(len(t.load.attempts) for t in totals)} requests"
    )
    result.figures = {
        "503 answers": ", ".join(
            f"{k} {v}" for k, v in sorted(sum(refused, start=type(refused[0])()).items())
        )
        or "0",
        "503-answered events that landed anyway": spread(landed_503, digits=0),
        "copies removed by dedup": spread(removed, digits=0),
        "stored exactly once": f"{sum(t.once for t in totals)}/{sum(t.events for t in totals)}",
        "outage window (run 1)": kill_windows[0],
        "freeze window (run 1)": freeze_windows[0],
        "peak worker RSS": spread(peak_rss, " MiB", 0),
        "statuses (last run)": ", ".join(f"{k}:{v}" for k, v in sorted(last.statuses.items())),
    }
    record(result)
