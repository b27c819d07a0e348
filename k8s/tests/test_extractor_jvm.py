"""The extractor's JVM options on Kubernetes: spark-submit starts the driver and executor
JVMs there, so the chart's sparkConf must carry what ``session.launch_conf`` gives the
JVM it starts itself in embedded mode (``session.JIT_OPTIONS``), in every ci scenario."""

from __future__ import annotations

import pytest

from questlog_extractor import session
from questlog_k8s import chartcheck

pytestmark = [pytest.mark.integration]

KEYS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")
SCENARIOS = sorted((chartcheck.CHART / "ci").glob("*-values.yaml"))


@pytest.mark.parametrize("values", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_spark_application_gives_every_jvm_the_jit_options(values):
    rendered = chartcheck.parse(chartcheck.render([values]))
    apps = [o for o in rendered if o["kind"] == "SparkApplication"]
    # the one scenario without the pipeline (Locust against an existing API) has none
    assert apps or values.name == "locust-only-values.yaml", f"{values.name}: no extractor"
    for app in apps:
        conf = app["spec"]["sparkConf"]
        for key in KEYS:
            assert session.JIT_OPTIONS in conf.get(key, "").split(), (key, conf.get(key))


def test_embedded_spark_gets_the_same_options():
    from questlog_extractor.settings import Settings

    settings = Settings(kafka_bootstrap="x:9092", lake_root="file:///tmp/lake")
    conf = session.launch_conf(settings, {})
    assert session.JIT_OPTIONS in conf["spark.driver.extraJavaOptions"].split()
    # under spark-submit, the chart's (above) rule: nothing set from inside the driver
    assert session.launch_conf(settings, {session.SPARK_SUBMIT_MARK: "1"}) == {}
