"""The strict validator: each schema source can fail, and a failure names object and field.

The integration tests run the real kubeconform against the real cached schemas (built
once by questlog_k8s.tools and questlog_k8s.schemas on a cold machine, which takes a minute
or two); the rest check the parsing of kubeconform's report, offline.
"""

from __future__ import annotations

import pytest

from questlog_k8s import validate
from questlog_k8s.validate import Problem

DEPLOYMENT = """\
# Source: questlog/charts/api/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: questlog-api
  namespace: questlog
  labels: {app.kubernetes.io/name: api}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: api}
  template:
    metadata:
      labels: {app.kubernetes.io/name: api}
    spec:
      containers:
        - name: api
          image: questlog/api:0.1.0
          imagePullPolicy: IfNotPresent
          ports: [{name: http, containerPort: 5000}]
"""

# The minimal objects the chart's own templates can start from.
KAFKA = """\
apiVersion: kafka.strimzi.io/v1
kind: Kafka
metadata:
  name: questlog
  namespace: questlog
spec:
  kafka:
    listeners:
      - name: plain
        port: 9092
        type: internal
        tls: false
"""

KAFKA_NODE_POOL = """\
apiVersion: kafka.strimzi.io/v1
kind: KafkaNodePool
metadata:
  name: dual-role
  namespace: questlog
  labels: {strimzi.io/cluster: questlog}
spec:
  replicas: 1
  roles: [controller, broker]
  storage:
    type: persistent-claim
    size: 1Gi
    kraftMetadata: shared
"""

KAFKA_TOPIC = """\
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: events
  namespace: questlog
  labels: {strimzi.io/cluster: questlog}
spec:
  partitions: 3
  replicas: 1
  config:
    retention.ms: 604800000
"""

SPARK_APPLICATION = """\
apiVersion: sparkoperator.k8s.io/v1beta2
kind: SparkApplication
metadata:
  name: questlog-extractor
  namespace: questlog
spec:
  type: Python
  mode: cluster
  image: questlog/extractor:0.1.0
  mainApplicationFile: local:///opt/questlog/spark_main.py
  sparkVersion: 4.1.1
  restartPolicy:
    type: Always
    onFailureRetryInterval: 10
    onSubmissionFailureRetryInterval: 20
  driver:
    cores: 1
    memory: 1g
    serviceAccount: questlog-spark
  executor:
    instances: 1
    cores: 1
    memory: 1g
"""

SERVICE_MONITOR = """\
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: questlog-api
  namespace: questlog
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: api}
  endpoints:
    - port: http
      path: /metrics
"""


def broken(manifest: str, after: str, insert: str) -> str:
    """The manifest with `insert` placed after the first line reading `after`: beside it,
    or inside it when `after` opens a mapping ("kafka:")."""
    lines = manifest.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip(" -") == after)
    indent = len(lines[index]) - len(lines[index].lstrip(" -"))
    if after.endswith(":"):
        indent += 2
    return "\n".join([*lines[: index + 1], " " * indent + insert, *lines[index + 1 :]]) + "\n"


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# ------------------------------------------------------------------ against kubeconform

GOOD = [DEPLOYMENT, KAFKA, KAFKA_NODE_POOL, KAFKA_TOPIC, SPARK_APPLICATION, SERVICE_MONITOR]


@pytest.mark.integration
@pytest.mark.parametrize(
    "manifest",
    GOOD,
    ids=[
        "Deployment",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "SparkApplication",
        "ServiceMonitor",
    ],
)
def test_a_valid_object_passes(manifest):
    assert validate.validate(manifest) == []


@pytest.mark.integration
def test_a_stream_of_valid_objects_passes():
    assert validate.validate("---\n".join(GOOD)) == []


@pytest.mark.integration
@pytest.mark.parametrize(
    ("manifest", "after", "insert", "kind", "name", "path"),
    [
        (
            DEPLOYMENT,
            "imagePullPolicy: IfNotPresent",
            "imagePullPolcy: Always",
            "Deployment",
            "questlog-api",
            "spec.template.spec.containers[0].imagePullPolcy",
        ),
        (
            SPARK_APPLICATION,
            "cores: 1",
            "coresx: 2",
            "SparkApplication",
            "questlog-extractor",
            "spec.driver.coresx",
        ),
        (KAFKA, "kafka:", "replicas: 3", "Kafka", "questlog", "spec.kafka.replicas"),
        (
            KAFKA_NODE_POOL,
            "size: 1Gi",
            "sizee: 2Gi",
            "KafkaNodePool",
            "dual-role",
            "spec.storage.sizee",
        ),
        (KAFKA_TOPIC, "partitions: 3", "partition: 3", "KafkaTopic", "events", "spec.partition"),
        (
            SERVICE_MONITOR,
            "path: /metrics",
            "intervall: 30s",
            "ServiceMonitor",
            "questlog-api",
            "spec.endpoints[0].intervall",
        ),
        (KAFKA, "name: questlog", "lables: {}", "Kafka", "questlog", "metadata.lables"),
    ],
    ids=[
        "Deployment",
        "SparkApplication",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "ServiceMonitor",
        "CRD-metadata",
    ],
)
def test_an_unknown_field_fails_naming_object_and_field(manifest, after, insert, kind, name, path):
    problem = only(validate.validate(broken(manifest, after, insert)))
    assert (problem.kind, problem.namespace, problem.name, problem.path) == (
        kind,
        "questlog",
        name,
        path,
    )
    assert "unknown field" in problem.message
    assert f"{kind} questlog/{name}" in str(problem)
    assert path in str(problem)


@pytest.mark.integration
def test_a_wrong_type_and_a_missing_required_field_fail():
    problems = validate.validate(
        KAFKA_NODE_POOL.replace("replicas: 1", "replicas: one").replace(
            "  roles: [controller, broker]\n", ""
        )
    )
    assert sorted((p.path, p.message) for p in problems) == [
        ("spec", "missing property 'roles'"),
        ("spec.replicas", "got string, want integer"),
    ]


@pytest.mark.integration
def test_the_kafka_v1_node_pool_fields_are_not_accepted_on_kafka():
    # Strimzi >= 1.0: storage and replicas live on the KafkaNodePool only.
    problems = validate.validate(broken(KAFKA, "kafka:", "storage: {type: ephemeral}"))
    assert only(problems).path == "spec.kafka.storage"


@pytest.mark.integration
def test_an_unknown_kind_fails():
    problem = only(
        validate.validate(
            "apiVersion: questlog.dev/v1\nkind: Gizmo\nmetadata: {name: g, namespace: questlog}\n"
        )
    )
    assert (problem.kind, problem.name) == ("Gizmo", "g")
    assert "no schema for questlog.dev/v1 Gizmo" in problem.message


@pytest.mark.integration
def test_a_removed_api_version_fails():
    problem = only(validate.validate(DEPLOYMENT.replace("apps/v1", "extensions/v1beta1")))
    assert "no schema for extensions/v1beta1 Deployment" in problem.message


@pytest.mark.integration
def test_problems_name_their_document_in_a_stream():
    stream = "---\n".join([KAFKA_TOPIC, broken(DEPLOYMENT, "replicas: 2", "replica: 2")])
    problem = only(validate.validate(stream))
    assert problem.source == "questlog/charts/api/templates/deployment.yaml"
    assert problem.path == "spec.replica"
    stream = "---\n".join([DEPLOYMENT, broken(KAFKA_TOPIC, "partitions: 3", "x: 1")])
    assert only(validate.validate(stream)).source == "document 2"


@pytest.mark.integration
def test_duplicate_keys_fail():
    problem = only(
        validate.validate(DEPLOYMENT.replace("  replicas: 2\n", "  replicas: 2\n  replicas: 3\n"))
    )
    assert "already set" in problem.message or "duplicate" in problem.message


@pytest.mark.integration
def test_the_cli_prints_one_line_per_problem_and_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "---\n".join(
            [broken(KAFKA, "kafka:", "replicas: 3"), broken(KAFKA_TOPIC, "partitions: 3", "x: 1")]
        )
    )
    assert validate.main([str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Kafka questlog/questlog (document 1): spec.kafka.replicas: ")
    good = tmp_path / "good.yaml"
    good.write_text(KAFKA)
    assert validate.main([str(good)]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.integration
def test_comment_only_documents_are_empty_not_invalid():
    assert validate.validate("---\n# Source: questlog/templates/off.yaml\n---\n") == []


def test_an_empty_stream_is_valid_without_running_kubeconform(monkeypatch):
    def fail(files):
        raise AssertionError("kubeconform ran")

    monkeypatch.setattr(validate, "kubeconform_command", fail)
    assert validate.validate("") == []
    assert validate.validate("---\n\n---\n") == []


# ------------------------------------------------------------------ report parsing, offline


def test_documents_are_cut_where_kubeconform_cuts_them():
    assert validate.split_documents("a: 1\n---\nb: 2\n--- # x\nc: 3") == ["\na: 1", "b: 2", "c: 3"]
    assert validate.split_documents("a: |\n  ---\n") == ["\na: |\n  ---\n"]


def test_field_paths_are_dotted_with_list_indexes():
    assert validate.field_path("/spec/template/spec/containers/0/ports/1") == (
        "spec.template.spec.containers[0].ports[1]"
    )
    assert validate.field_path("/metadata/annotations/a~1b") == "metadata.annotations.a/b"
    assert validate.field_path("") == ""


def test_kubeconform_leaf_errors_become_problems():
    doc = validate._Document(0, "", "Deployment", "apps/v1", "questlog", "api", "t.yaml")
    result = {
        "kind": "Deployment",
        "name": "api",
        "version": "apps/v1",
        "status": "statusInvalid",
        "msg": "problem validating schema. Check JSON formatting: jsonschema validation "
        "failed with 'file:///s/deployment-apps-v1.json#' - at '/metadata': "
        "additional properties 'lables' not allowed - at '/spec': validation failed"
        "   - at '/spec/replicas': got string, want null or integer"
        "   - at '/spec/template/spec/containers/0': additional properties 'foo', "
        "'imagePullPolcy' not allowed",
    }
    got = [(p.path, p.message) for p in validate.problems_from_result(result, doc)]
    assert got == [
        ("metadata.lables", "unknown field (not in the schema)"),
        ("spec.replicas", "got string, want null or integer"),
        ("spec.template.spec.containers[0].foo", "unknown field (not in the schema)"),
        ("spec.template.spec.containers[0].imagePullPolcy", "unknown field (not in the schema)"),
    ]
    assert str(validate.problems_from_result(result, doc)[0]) == (
        "Deployment questlog/api (t.yaml): metadata.lables: unknown field (not in the schema)"
    )


def test_an_error_without_leaves_is_kept_whole():
    doc = validate._Document(3, "", source="document 4")
    result = {
        "kind": "",
        "name": "",
        "version": "",
        "status": "statusError",
        "msg": "error unmarshalling resource: yaml: line 3: mapping values",
    }
    (problem,) = validate.problems_from_result(result, doc)
    assert problem.path == ""
    assert problem.message == result["msg"]
    assert str(problem).startswith("? ? (document 4): error unmarshalling")
