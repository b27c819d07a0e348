"""T2 network partition between the API and Kafka: the API reaches the broker only through
a loopback TCP proxy (the broker advertises the proxy on a listener of its own), which the
scenario cuts one way (requests arrive, acks are lost: the broker writes what the API
must call "possibly persisted"), cuts both ways, and slows down. Clients (legacy routes)
retry refused events with the id the 503 gave them.

Invariants: lost = 0; every event stored under exactly one id (Kafka read directly:
distinct ids per event); the extra copies that ambiguous timeouts leave in Kafka are
counted as "removed by dedup" (the extractor's dedup itself is proven in T3); the
partition produced at least one such ambiguous refusal that landed, else the scenario
tested nothing.
"""

from __future__ import annotations

import random
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
from questlog_chaos.tcpproxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.sabotage("api_ignore_event_id")
def test_t02_partition(scale, record, sabotaged, sabotage_env, request, tmp_path_factory, tmp_path):
    rng = random.Random(scale.seed + 2)
    events = scale.pick(400, 3000)
    rate = scale.pick(40.0, 150.0)
    produce_timeout = scale.pick(2.0, 5.0)
    cut_s = produce_timeout + scale.pick(2.5, 4.0)
    delay_s = scale.pick(0.3, 0.5)
    broker = rig_broker(request, tmp_path_factory)
    result = Result(
        "T2",
        "network partition API <-> Kafka (loopback TCP proxy)",
        load=f"{scale.runs} run(s) x {events} legacy GETs at ~{rate:.0f} req/s, "
        "8 clients retrying with X-Event-Id / event_id",
        faults=f"replies dropped {cut_s:.1f} s then reset; both ways cut "
        f"{cut_s:.1f} s; +{delay_s:.1f} s per chunk for 3 s "
        f"(ack wait {produce_timeout:.1f} s)",
    )
    landed, removed, windows, totals = [], [], [], []
    for run in range(scale.runs):
        topic = new_topic(broker, f"t02-{run}")
        tag = f"t2r{run}"
        with TcpProxy(("127.0.0.1", broker.inner_port), port=broker.proxy_port) as proxy:
            api = Api(
                tmp_path / f"api-{run}",
                broker.proxied_bootstrap,
                topic,
                sabotage_env,
                produce_timeout_s=produce_timeout,
            )
            with api, Monitor(api) as monitor:
                load = Load(
                    api.port,
                    plan(rng, tag, events, routes=("get_header", "get_param")),
                    clients=8,
                    rate=rate,
                    give_up_s=events / rate + 120,
                ).start()
                load.wait_progress(0.25, timeout_s=120)
                t_cut = time.monotonic()
                proxy.set_mode("drop_replies")
                time.sleep(cut_s)
                proxy.reset()
                proxy.set_mode("open")
                t_heal = time.monotonic()
                load.wait_progress(0.55, timeout_s=120)
                t_hole = time.monotonic()
                proxy.set_mode("blackhole")
                time.sleep(cut_s)
                proxy.set_mode("open")
                t_hole_end = time.monotonic()
                load.wait_progress(0.75, timeout_s=120)
                proxy.delay_s = delay_s
                time.sleep(3.0)
                proxy.delay_s = 0.0
                finished = load.join(timeout_s=events / rate + 150)
                result.check(finished, "the load did not finish in time")
                time.sleep(1.0)
        tally = Tally(load, read_topic(broker.bootstrap, topic, prefix=tag + "-"))
        tally.check_common(result)
        acked_cut = tally.acked_within(t_cut + 0.05, t_heal)
        result.check(acked_cut == 0, f"{acked_cut} 2xx while Kafka's replies were dropped")
        result.check(
            sum(tally.refused_landed.values()) > 0,
            "no refused event landed: the partition caused no ambiguous timeout",
        )
        result.check(
            monitor.not_ready_within(t_cut, t_heal + 1) is not None,
            "/readyz never answered 503 during the one-way cut",
        )
        landed.append(sum(tally.refused_landed.values()))
        removed.append(tally.removed_by_dedup)
        cut = tally.refusals_within(t_cut, t_heal + produce_timeout)
        hole = tally.refusals_within(t_hole, t_hole_end + produce_timeout)
        windows.append(
            f"replies dropped 0-{t_heal - t_cut:.1f} s: 503s "
            + ("none" if cut is None else f"{cut[0] - t_cut:.1f}-{cut[1] - t_cut:.1f} s")
            + f"; both ways 0-{t_hole_end - t_hole:.1f} s: 503s "
            + ("none" if hole is None else f"{hole[0] - t_hole:.1f}-{hole[1] - t_hole:.1f} s")
        )
        totals.append(tally)
    result.inputs = (
        f"{sum(t.events for t in totals)} events, "
        f"{sum(len(t.load.attempts) for t in totals)} requests"
    )
    result.figures = {
        "503-answered events that landed anyway (ambiguous)": spread(landed, digits=0),
        "copies removed by dedup": spread(removed, digits=0),
        "stored exactly once": f"{sum(t.once for t in totals)}/{sum(t.events for t in totals)}",
        "windows (run 1)": windows[0],
        "503 answers": ", ".join(
            f"{k} {v}"
            for k, v in sorted(
                sum((t.persistence for t in totals), start=type(totals[0].persistence)()).items()
            )
        ),
    }
    record(result)
