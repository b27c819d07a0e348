"""Every metric the chart's Grafana dashboards query is exported by the real services.

The embedded stack (Kafka, the API under gunicorn in multiprocess mode, the Spark
extractor, the query service) takes good events, a malformed and an invalid request (4xx)
and a few query calls; then each service's /metrics is scraped and every questlog_* name
in every dashboard query must be a series that service exposes (a histogram queried as
_bucket/_sum/_count, a counter as _total). A metric renamed in a service or misspelt in a
dashboard fails here, not silently as an empty panel.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from questlog_embedded.stack import Stack
from questlog_k8s import dashboards

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = 6  # events, half of each type


def _request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post_json(url: str, payload: object, headers: dict[str, str] | None = None) -> int:
    return _request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
    )[0]


def _event(i: int) -> dict:
    if i % 2:
        return {
            "event_id": str(uuid.uuid4()),
            "event_type": "join_guild",
            "player_id": f"grafana-{i}",
            "properties": {"guild_id": "g-wolves"},
        }
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase_sword",
        "player_id": f"grafana-{i}",
        "properties": {"sword_type": "katana", "price": 4.99, "currency": "EUR"},
    }


def _rows(stack: Stack) -> dict[str, int]:
    status, body = _request(f"{stack.query}/v1/tables")
    assert status == 200, body[:500]
    return {t["name"]: t.get("rows") or 0 for t in json.loads(body)["tables"]}


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


@pytest.fixture(scope="module")
def expositions(tmp_path_factory) -> dict[str, str]:
    """Each service's /metrics text after real traffic went through the whole stack."""
    with Stack(tmp_path_factory.mktemp("grafana-stack")) as stack:
        api = f"{stack.api}/v1/events"
        assert _post_json(api, [_event(i) for i in range(GOOD)]) == 202
        assert (
            _post_json(
                api, {"event_type": "join_guild", "player_id": "grafana-bad", "properties": {}}
            )
            == 422
        )  # invalid: a 4xx
        assert (
            _request(api, b'{"event_type": ', {"Content-Type": "application/json"})[0] == 400
        )  # malformed JSON
        deadline = time.monotonic() + 180
        while True:  # the extractor wrote them and the query service sees them
            rows = _rows(stack)
            if (
                rows.get("purchase_sword", 0) >= GOOD // 2
                and rows.get("join_guild", 0) >= GOOD // 2
            ):
                break
            assert time.monotonic() < deadline, f"rows never reached the lake: {rows}"
            time.sleep(1)
        token = (stack.var / "secrets" / "query_read_token").read_text().strip()
        assert _request(f"{stack.query}/v1/events/purchase_sword?limit=5")[0] == 200
        assert _request(f"{stack.query}/v1/events/no_such_type")[0] == 404
        assert (
            _post_json(
                f"{stack.query}/v1/sql",
                {"sql": "DROP TABLE purchase_sword"},
                {"Authorization": f"Bearer {token}"},
            )
            == 400
        )
        urls = {
            "api": f"{stack.api}/metrics",
            "query": f"{stack.query}/metrics",
            "extractor": f"http://127.0.0.1:{stack.ports['METRICS']}/metrics",
        }
        texts = {}
        deadline = time.monotonic() + 60
        while True:
            # the embedded query service runs two workers, each with its own registry
            # (no PROMETHEUS_MULTIPROC_DIR): scrape until the one answering loaded the lake
            _rows(stack)
            for service, url in urls.items():
                status, body = _request(url)
                assert status == 200, f"{service} /metrics: {status}"
                texts[service] = body.decode()
            if _samples(texts["query"], "questlog_query_table_rows") and _samples(
                texts["extractor"], "questlog_extractor_rows_written_total"
            ):
                return texts
            assert time.monotonic() < deadline, "no table rows in the query service's metrics"
            time.sleep(1)


def test_the_traffic_shows_in_the_metrics_the_panels_read(expositions):
    """Not an empty scrape: the 4xx, the accepted events, the rows written and served."""
    api, query, extractor = (expositions[s] for s in ("api", "query", "extractor"))
    statuses = {
        labels["status"]
        for labels, value in _samples(api, "questlog_api_requests_total")
        if value > 0
    }
    assert {"202", "400", "422"} <= statuses
    accepted = sum(v for _, v in _samples(api, "questlog_api_events_accepted_total"))
    assert accepted == GOOD
    assert any(
        labels["reason"] == "invalid" and value >= 1
        for labels, value in _samples(api, "questlog_api_events_rejected_total")
    )
    assert _samples(api, "questlog_api_events_in_flight") == [({}, 0.0)]  # all acked
    written = {
        labels["table"]: value
        for labels, value in _samples(extractor, "questlog_extractor_rows_written_total")
    }
    assert written.get("purchase_sword", 0) >= GOOD // 2
    assert written.get("join_guild", 0) >= GOOD // 2
    served = {
        labels["table"]: value for labels, value in _samples(query, "questlog_query_table_rows")
    }
    assert served.get("purchase_sword", 0) >= GOOD // 2


def test_every_metric_a_dashboard_queries_is_exported(expositions):
    exported = {service: dashboards.series_names(text) for service, text in expositions.items()}
    checked, missing = set(), []
    for path, dashboard in dashboards.load():
        for expr in dashboards.queries(dashboard):
            for name in sorted(dashboards.metric_names(expr)):
                service = name.split("_")[1]  # questlog_<service>_...
                checked.add(name)
                if name not in exported.get(service, {}):
                    missing.append(
                        f"{path.name}: {name} is not exported by the {service} "
                        f"service (query {expr!r})"
                    )
    assert not missing, "\n".join(missing)
    assert len(checked) >= 25, sorted(checked)  # both dashboards, every service
    assert {n.split("_")[1] for n in checked} == {"api", "query", "extractor"}
