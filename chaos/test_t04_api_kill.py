"""T4 the API killed under load: one gunicorn worker SIGKILLed (the master starts another),
later the whole API sent SIGTERM and started again. Clients retry with their event ids
after a 503 or a connection failure.

Invariants: lost = 0 (every 2xx event is in Kafka); the only answers are 2xx, 503 with
Retry-After and its ids, or no answer at all (a refusal the client sees), never a silent
drop; SIGTERM ends the API cleanly (exit 0) after flushing; every event stored under
exactly one id (Kafka read directly; extra copies of an id are what dedup removes).
The API batches (LINGER_MS=100), so events wait in the producer a while before they are
sent: only the ack wait and the flush keep them.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from questlog_chaos.api_rig import Api, Load, Tally, new_topic, plan, read_topic, rig_broker
from questlog_chaos.report import Result, spread

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.sabotage("api_no_flush")
def test_t04_api_kill(scale, record, sabotaged, sabotage_env, request, tmp_path_factory, tmp_path):
    rng = random.Random(scale.seed + 4)
    events = scale.pick(600, 5000)
    rate = scale.pick(50.0, 200.0)
    broker = rig_broker(request, tmp_path_factory)
    result = Result(
        "T4",
        "API worker SIGKILL and API SIGTERM under load",
        load=f"{scale.runs} run(s) x {events} events at ~{rate:.0f} req/s, "
        "8 clients (legacy GETs, POST batches of 5)",
        faults="SIGKILL one worker at 30%; SIGTERM the API at 60%, start again",
    )
    exits, refusals, landed, removed, totals = [], [], [], [], []
    for run in range(scale.runs):
        topic = new_topic(broker, f"t04-{run}")
        tag = f"t4r{run}"
        env = {**sabotage_env, "QUESTLOG_API_LINGER_MS": "100"}
        api = Api(tmp_path / f"api-{run}", broker.bootstrap, topic, env, produce_timeout_s=3.0)
        with api:
            load = Load(
                api.port,
                plan(rng, tag, events, batch=5),
                clients=8,
                rate=rate,
                give_up_s=events / rate + 120,
            ).start()
            load.wait_progress(0.3, timeout_s=120)
            victim = rng.choice(api.worker_pids())
            os.kill(victim, signal.SIGKILL)
            load.wait_progress(0.6, timeout_s=120)
            t_term = time.monotonic()
            rc = api.terminate(timeout_s=40)
            exits.append(time.monotonic() - t_term)
            result.check(rc == 0, f"the API exited {rc} after SIGTERM")
            time.sleep(1.0)  # clients meet a closed port: refusals
            api.start()
            finished = load.join(timeout_s=events / rate + 150)
            result.check(finished, "the load did not finish in time")
        tally = Tally(load, read_topic(broker.bootstrap, topic, prefix=tag + "-"))
        tally.check_common(result)
        odd = {
            status for status in tally.statuses if not (200 <= status < 300 or status in (0, 503))
        }
        result.check(not odd, f"answers other than 2xx / 503 / refusal: {sorted(odd)}")
        result.check(
            tally.statuses.get(0, 0) > 0,
            "no client saw a refusal: the kills were not felt, the scenario tested nothing",
        )
        refusals.append(tally.statuses.get(0, 0))
        landed.append(sum(tally.refused_landed.values()))
        removed.append(tally.removed_by_dedup)
        totals.append(tally)
    result.inputs = (
        f"{sum(t.events for t in totals)} events, "
        f"{sum(len(t.load.attempts) for t in totals)} requests"
    )
    result.figures = {
        "connection refusals/resets": spread(refusals, digits=0),
        "503 answers": ", ".join(
            f"{k} {v}"
            for k, v in sorted(
                sum((t.persistence for t in totals), start=type(totals[0].persistence)()).items()
            )
        )
        or "0",
        "events refused (503 or no answer) then stored": spread(landed, digits=0),
        "copies removed by dedup": spread(removed, digits=0),
        "stored exactly once": f"{sum(t.once for t in totals)}/{sum(t.events for t in totals)}",
        "SIGTERM to exit": spread(exits, " s"),
    }
    record(result)
