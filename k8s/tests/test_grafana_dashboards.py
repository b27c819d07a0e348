"""The Grafana dashboards (charts/questlog/files/grafana/*.json) and the ConfigMap that
ships them to the Grafana sidecar: well-formed dashboards whose every query is valid
PromQL on questlog's own metrics, every file in the ConfigMap byte for byte, the sidecar's
label and folder as set, nothing when turned off. That each metric a panel queries is
really exported is tests/integration/test_grafana_metrics.py's job, on the real stack."""

from __future__ import annotations

import json

import promql_parser
import pytest
import yaml

from questlog_k8s import chartcheck, dashboards

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data a ConfigMap may hold (the API server's check)
FILES = dashboards.files()


def _selectors(node):
    """Every vector selector of a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
        return
    if isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
        return
    for attr in ("expr", "lhs", "rhs", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from _selectors(child)
    for arg in getattr(node, "args", None) or ():
        yield from _selectors(arg)


def _configmaps(*sets: str):
    objects = chartcheck.parse(chartcheck.render(sets=sets))
    return [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-grafana-dashboards")
    ]


def test_the_chart_ships_the_two_dashboards():
    assert [p.name for p in FILES] == ["questlog-pipeline.json", "questlog-services.json"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_dashboard_is_well_formed(path):
    raw = path.read_text(encoding="utf-8")
    dashboard = json.loads(raw)
    assert raw.endswith("}\n")  # one final newline, which the ConfigMap keeps as is
    assert dashboard["uid"].startswith("questlog-")
    assert len(dashboard["uid"]) <= 40  # Grafana's limit
    assert dashboard["title"].startswith("questlog / ")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    # "All" is ".*", which also matches series without a namespace label (a local scrape)
    assert variables["namespace"]["includeAll"] is True
    assert variables["namespace"]["allValue"] == ".*"
    panels = dashboard["panels"]
    assert panels
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        where = f"{path.name}: panel {panel.get('title')!r}"
        assert panel["title"], where
        assert panel["datasource"] == DATASOURCE, where
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), where
        assert panel["targets"], f"{where}: no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{where}: empty expr"
            assert target.get("datasource", DATASOURCE) == DATASOURCE, where


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_query_is_promql_on_questlog_metrics_only(path):
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    exprs = dashboards.queries(dashboard)
    assert len(exprs) > len(dashboard["panels"])  # panels with several queries, variables
    for expr in exprs:
        try:
            parsed = promql_parser.parse(dashboards.offline(expr))
        except ValueError as exc:
            pytest.fail(f"{path.name}: {expr!r} is not PromQL: {exc}")
        names = {s.name for s in _selectors(parsed)}
        assert names, expr
        assert all(n.startswith("questlog_") for n in names), (expr, names)
        # the names the integration test takes out of the text are the query's own
        assert dashboards.metric_names(expr) == names, expr


def test_links_point_at_the_other_shipped_dashboards():
    uids = {d["uid"] for _, d in dashboards.load()}
    assert len(uids) == len(FILES)
    for path, dashboard in dashboards.load():
        for link in dashboard["links"]:
            assert link["url"].removeprefix("/d/") in uids - {dashboard["uid"]}, path.name


def test_the_configmap_holds_every_file_byte_for_byte_with_the_sidecar_label():
    [cm] = _configmaps("grafana.dashboards.enabled=true")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["app.kubernetes.io/instance"] == chartcheck.RELEASE
    assert "namespace" not in cm["metadata"]  # the release's, like every other object
    assert "annotations" not in cm["metadata"]  # no folder asked for
    assert set(cm["data"]) == {p.name for p in FILES}
    for path in FILES:
        assert cm["data"][path.name].encode("utf-8") == path.read_bytes(), path.name
    size = sum(len(k.encode()) + len(v.encode()) for k, v in cm["data"].items())
    assert size < CONFIGMAP_LIMIT
    assert len(yaml.safe_dump(cm).encode()) < CONFIGMAP_LIMIT


def test_label_folder_and_namespace_follow_the_values():
    [cm] = _configmaps(
        "grafana.dashboards.enabled=true",
        "grafana.dashboards.label=dash",
        "grafana.dashboards.labelValue=questlog",
        "grafana.dashboards.folder=Games",
        "grafana.dashboards.folderAnnotation=grafana_folder",
        "grafana.dashboards.namespace=monitoring",
    )
    assert cm["metadata"]["labels"]["dash"] == "questlog"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Games"}
    assert cm["metadata"]["namespace"] == "monitoring"


def test_nothing_is_rendered_when_disabled():
    assert chartcheck.parse(chartcheck.render())  # the chart renders...
    assert _configmaps() == []  # ...without the dashboards: off by default
    assert _configmaps("grafana.dashboards.enabled=false") == []


def test_the_production_scenario_turns_them_on_in_a_folder():
    objects = chartcheck.parse(chartcheck.render([chartcheck.CHART / "ci/production-values.yaml"]))
    [cm] = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"].get("labels", {})
    ]
    assert cm["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "questlog"}
    # what docs/deploy-kubernetes.md says: the chart's only ServiceMonitor is the API's
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert [m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for m in monitors] == [
        "api"
    ]


def test_the_schema_refuses_a_misspelt_or_malformed_setting():
    with pytest.raises(chartcheck.CheckError, match="enable"):
        chartcheck.render(sets=["grafana.dashboards.enable=true"])
    with pytest.raises(chartcheck.CheckError, match="labelValue"):
        chartcheck.render(sets=["grafana.dashboards.labelValue=not valid"])
