"""`make chart-check`'s parts on the real chart: every scenario renders and passes, and
each validator fails when one field of one rendered object is broken, naming the object
and the field (so none of them can pass by checking nothing)."""

from __future__ import annotations

import copy

import pytest
import yaml

from questlog_k8s import chartcheck, policy

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def default_objects():
    return chartcheck.parse(chartcheck.render())


def _one(objects, kind, name_suffix=""):
    return next(
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)
    )


def _validate(objects):
    return chartcheck.validate_objects(yaml.safe_dump_all(objects), objects)


def test_every_ci_scenario_lints_renders_validates_and_meets_the_policy():
    names = [chartcheck.scenario_name(v) for v in chartcheck.scenarios()]
    assert {
        "default",
        "kind",
        "minikube",
        "production",
        "minimal",
        "external",
        "locust-only",
    } <= set(names)
    for values in chartcheck.scenarios():
        result = chartcheck.check_scenario(values)
        assert result.objects, result.scenario
        assert result.problems == [], result.problems


def test_the_rendered_defaults_validate(default_objects):
    assert _validate(default_objects) == []


@pytest.mark.parametrize(
    ("kind", "suffix", "edit", "expected"),
    [
        # a core object against the Kubernetes 1.37 schemas
        (
            "Deployment",
            "-api",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
                imagePullPolcy="Always"
            ),
            "imagePullPolcy",
        ),
        # the SparkApplication against the Spark Operator's CRD
        (
            "SparkApplication",
            "-extractor",
            lambda o: o["spec"]["driver"].update(coresx=1),
            "coresx",
        ),
        # its pod template (schemaless in the CRD) as a Pod
        (
            "SparkApplication",
            "-extractor",
            lambda o: o["spec"]["driver"]["template"]["spec"]["containers"][0].update(envv=[]),
            "envv",
        ),
        # Strimzi's v1 CRDs: replicas moved to the node pool
        ("Kafka", "-kafka", lambda o: o["spec"]["kafka"].update(replicas=3), "replicas"),
        ("KafkaTopic", "-topic", lambda o: o["spec"].update(partitions="six"), "partitions"),
        ("KafkaNodePool", "-pool", lambda o: o["spec"].pop("roles"), "roles"),
    ],
)
def test_each_schema_validator_names_the_object_and_field(
    default_objects, kind, suffix, edit, expected
):
    objects = copy.deepcopy(default_objects)
    target = _one(objects, kind, suffix)
    edit(target)
    problems = _validate(objects)
    assert problems, f"{kind}: the broken field passed validation"
    assert all(target["metadata"]["name"] in p for p in problems), problems
    assert any(expected in p for p in problems), problems


def test_the_policy_names_the_object_and_field_on_the_rendered_chart(default_objects):
    objects = copy.deepcopy(default_objects)
    api = _one(objects, "Deployment", "-api")
    del api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    problems = [str(p) for p in policy.check(objects)]
    assert problems == [
        "Deployment questlog-api: spec.template.spec.containers[0].readinessProbe: missing"
    ]


def test_values_are_checked_against_the_schema_at_install_time():
    with pytest.raises(chartcheck.CheckError, match="replica"):
        chartcheck.render(sets=["api.replica=3"])  # a typo of api.replicas
    with pytest.raises(chartcheck.CheckError, match="/api/image/tag"):  # not "latest"
        chartcheck.render(sets=["api.image.tag=latest"])
    with pytest.raises(chartcheck.CheckError, match=r"global\.kafka\.bootstrap"):
        chartcheck.render(sets=["kafka.enabled=false"])


def test_lint_fails_on_a_broken_values_file(tmp_path):
    bad = tmp_path / "bad-values.yaml"
    bad.write_text("query:\n  replicas: zero\n")
    problems = chartcheck.lint(bad)
    assert problems
    assert any("replicas" in p for p in problems), problems


def test_kind_never_pulls_questlogs_images_but_pulls_public_ones():
    """kind loads questlog's own images (`kind load`, skaffold): Never pulled. A public
    image (HDFS's) must still be pulled, or its pods could never start there."""
    objects = chartcheck.parse(chartcheck.render([chartcheck.CHART / "ci/kind-values.yaml"]))
    policies = {}
    for obj in objects:
        for pod in policy.pods_of(obj):
            for c in pod.spec.get("containers") or []:
                if c.get("image"):
                    policies[c["image"]] = c.get("imagePullPolicy")
    assert {image for image, pull in policies.items() if pull == "Never"} == {
        "questlog-api:0.1.0",
        "questlog-query:0.1.0",
        "questlog-locust:0.1.0",
        "questlog-extractor:0.1.0",
    }  # the compaction CronJob's
    assert policies["docker.io/apache/hadoop:3.4.1"] == "IfNotPresent"
