"""The wiring test's one mapping: only whole addresses and paths change, each once."""

from __future__ import annotations

import pytest

from questlog_k8s import chartcheck, wiring

MAPPING = wiring.Mapping(
    addresses={"questlog-api:5000": "127.0.0.1:15000", "questlog-locust-master": "127.0.0.1"},
    listen={
        ("api", "QUESTLOG_API_BIND"): "127.0.0.1:15000",
        ("locust-master", "--web-port"): "18089",
    },
    # a repository checked out under /tmp (as CI's clones are) must not be rewritten again
    paths={
        "/app/gunicorn.conf.py": "/tmp/clone/services/query/gunicorn.conf.py",
        "/tmp": "/tmp/test/pod-tmp",
    },
    spark_master="local[2]",
    spark_jars="/cache/a.jar,/cache/b.jar",
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/app/gunicorn.conf.py", "/tmp/clone/services/query/gunicorn.conf.py"),
        ("/tmp/questlog-api-metrics", "/tmp/test/pod-tmp/questlog-api-metrics"),
        ("http://questlog-api:5000/v1", "http://127.0.0.1:15000/v1"),
        ("x-questlog-api:5000", "x-questlog-api:5000"),  # another host
        ("/tmpfiles", "/tmpfiles"),  # another path
        ("/data/tmp/x", "/data/tmp/x"),
        ("questlog-locust-master-0", "questlog-locust-master-0"),
    ],
)
def test_only_whole_addresses_and_paths_are_rewritten_once(value, expected):
    container = wiring.Container("query", ("gunicorn", "-c", value), {"X": value})
    local = wiring.apply(container, MAPPING)
    assert local.command[-1] == expected
    assert local.env["X"] == expected


def test_listening_addresses_and_flags_take_the_mapped_values():
    api = wiring.apply(
        wiring.Container(
            "api", ("python", "-m", "questlog_api"), {"QUESTLOG_API_BIND": "0.0.0.0:5000"}
        ),
        MAPPING,
    )
    assert api.env == {"QUESTLOG_API_BIND": "127.0.0.1:15000"}
    master = wiring.apply(
        wiring.Container(
            "locust-master", ("locust", "--web-port", "8089", "-H", "http://questlog-api:5000"), {}
        ),
        MAPPING,
    )
    assert master.command == ("locust", "--web-port", "18089", "-H", "http://127.0.0.1:15000")


def test_the_rendered_chart_gives_every_workload_with_its_secrets_resolved():
    objects = chartcheck.parse(chartcheck.render())
    found = wiring.containers(objects, "questlog")
    assert set(found) == {
        "api",
        "query",
        "extractor",
        "locust-master",
        "locust-worker",
        "helm-test",
        "compact",
    }
    assert found["compact"].command == ("python", "-m", "questlog_extractor", "compact")
    assert len(found["api"].env["QUESTLOG_API_IP_HASH_KEY"]) == 48  # from the rendered Secret
    extractor = wiring.apply(found["extractor"], MAPPING)
    assert extractor.command[:7] == (
        "spark-submit",
        "--jars",
        "/cache/a.jar,/cache/b.jar",
        "--master",
        "local[2]",
        "--deploy-mode",
        "client",
    )
    assert extractor.command[-2:] == ("local:///opt/questlog/spark_main.py", "run")


def test_a_secret_the_chart_does_not_render_is_an_error():
    env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]
    with pytest.raises(wiring.WiringError, match="missing"):
        wiring.resolve_env(env, {}, "Deployment x")
