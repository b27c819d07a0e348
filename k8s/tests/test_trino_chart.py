"""The optional Trino coordinator (charts/questlog/charts/trino): off by default; on, one
pod of Trino and its table registrar, configured for the lake the query service reads,
restricted like every pod of the chart, and refused at render time when its memory settings
would keep Trino from starting."""

from __future__ import annotations

import json

import pytest
import yaml

from questlog_k8s import chartcheck, policy, wiring
from questlog_query import trino_sync

pytestmark = [pytest.mark.integration]

RELEASE = chartcheck.RELEASE
NAME = f"{RELEASE}-trino"
ON = ["trino.enabled=true"]
PRODUCTION = chartcheck.CHART / "ci" / "production-values.yaml"
# What the registrar (python -m questlog_query.trino_sync) is given, by name.
REGISTRAR_ENV = (
    "QUESTLOG_TRINO_URL",
    "QUESTLOG_TRINO_LAKE_ROOT",
    "QUESTLOG_TRINO_CATALOG",
    "QUESTLOG_TRINO_SCHEMA",
    "QUESTLOG_TRINO_USER",
    "QUESTLOG_TRINO_SYNC_EVERY_S",
)
GiB = 1024**3


def _render(values=(), sets=()):
    return chartcheck.parse(chartcheck.render(values, sets=sets))


def _trino_objects(objects):
    return [
        o
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "trino"
        or "trino" in o["metadata"]["name"]
    ]


def _one(objects, kind, name=NAME):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _containers(objects):
    spec = _one(objects, "Deployment")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def _env(container):
    return {e["name"]: e["value"] for e in container["env"]}


def _properties(text):
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _size(text):
    """Bytes of a JVM (2G, 2048m) or Trino (1GB) size: both are 1024-based."""
    number = int(text.rstrip("kKmMgGtTB"))
    unit = text[len(str(number)) :].upper().rstrip("B")
    return number * 1024 ** ("KMGT".index(unit) + 1) if unit else number


@pytest.fixture(scope="module")
def defaults():
    return _render()


@pytest.fixture(scope="module")
def on():
    return _render(sets=ON)


@pytest.fixture(scope="module")
def production():
    return _render([PRODUCTION])


def test_off_by_default_renders_no_trino_object(defaults):
    assert _trino_objects(defaults) == []
    assert "trino-registrar" not in wiring.containers(defaults, RELEASE)


def test_on_renders_one_deployment_its_service_and_its_config(on, defaults):
    assert sorted((o["kind"], o["metadata"]["name"]) for o in _trino_objects(on)) == [
        ("ConfigMap", NAME),
        ("Deployment", NAME),
        ("NetworkPolicy", NAME),
        ("Service", NAME),
    ]
    deployment = _one(on, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    trino = _containers(on)["trino"]
    assert trino["image"] == "docker.io/trinodb/trino:476"
    assert trino["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    service = _one(on, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # the rest of the release is the same with or without Trino
    assert {(o["kind"], o["metadata"]["name"]) for o in on} - {
        (o["kind"], o["metadata"]["name"]) for o in _trino_objects(on)
    } == {(o["kind"], o["metadata"]["name"]) for o in defaults}


def test_the_config_is_mounted_at_etc_trino_with_the_catalog_in_its_folder(on):
    pod = _one(on, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in _containers(on)["trino"]["volumeMounts"]}
    config = volumes[mounts["/etc/trino"]["name"]]["configMap"]
    assert config["name"] == NAME
    assert {i["path"] for i in config["items"]} == {
        "node.properties",
        "jvm.config",
        "config.properties",
        "access-control.properties",
        "rules.json",
        "catalog/questlog.properties",
        "catalog/questlog_ready.properties",
    }
    data = _one(on, "ConfigMap")["data"]
    assert {i["key"] for i in config["items"]} == set(data)
    for path in ("/data/trino", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]["name"]], path


def test_trino_is_configured_as_one_coordinator_with_the_heap_of_its_values(on):
    data = _one(on, "ConfigMap")["data"]
    assert _properties(data["node.properties"]) == {
        "node.environment": "questlog",
        "node.data-dir": "/data/trino",
    }
    assert data["jvm.config"].split() == [
        "-Xmx2G",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djdk.attach.allowAttachSelf=true",
    ]
    assert _properties(data["config.properties"]) == {
        "coordinator": "true",
        "node-scheduler.include-coordinator": "true",
        "http-server.http.port": "8080",
        "discovery.uri": "http://localhost:8080",
        "query.max-memory": "1GB",
        "query.max-memory-per-node": "1GB",
    }


def test_analysts_read_and_only_the_registrar_registers(on):
    data = _one(on, "ConfigMap")["data"]
    assert _properties(data["access-control.properties"]) == {
        "access-control.name": "file",
        "security.config-file": "/etc/trino/rules.json",
    }
    # the same rules as the embedded Trino's, which its tests run against a real
    # coordinator: analysts read-only, the registrar's catalog AND procedure rules (without
    # the procedure rule CALL register_table is denied), the probe's own catalog
    rules = json.loads(data["rules.json"])
    assert rules == trino_sync.rules("questlog")
    assert rules["procedures"][0]["procedure"] == "register_table"
    assert _env(_containers(on)["registrar"])["QUESTLOG_TRINO_USER"] == "questlog-registrar"


@pytest.mark.parametrize(
    ("values", "sets", "lake"),
    [
        ((), ON, f"hdfs://{RELEASE}-hdfs-namenode:8020/questlog"),
        (
            (chartcheck.CHART / "ci" / "external-values.yaml",),
            ON,
            "hdfs://namenode.data.svc:8020/lakes/questlog",
        ),
    ],
    ids=["chart-hdfs", "external-hdfs"],
)
def test_the_catalog_reads_delta_tables_of_the_query_services_lake(values, sets, lake):
    objects = _render(values, sets)
    catalog = _properties(_one(objects, "ConfigMap")["data"]["questlog.properties"])
    assert catalog == {
        "connector.name": "delta_lake",
        "hive.metastore": "file",
        "hive.metastore.catalog.dir": "local:///data/trino/metastore",
        "fs.native-local.enabled": "true",
        "local.location": "/",
        "fs.hadoop.enabled": "true",
        "delta.register-table-procedure.enabled": "true",
    }
    query = _env_of(objects, f"{RELEASE}-query", "query")
    registrar = _env(_containers(objects)["registrar"])
    assert registrar["QUESTLOG_TRINO_LAKE_ROOT"] == query["QUESTLOG_QUERY_LAKE_ROOT"] == lake
    # Trino reads HDFS: its pod carries the label the HDFS NetworkPolicies admit
    labels = _one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert labels["questlog.dev/hdfs-client"] == "true"


def _env_of(objects, deployment, container):
    spec = _one(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    c = next(c for c in spec["containers"] if c["name"] == container)
    return {e["name"]: e.get("value") for e in c["env"]}


def test_the_registrar_gets_exactly_its_variables_in_the_query_services_image(on, production):
    registrar = _containers(on)["registrar"]
    assert registrar["command"] == ["python", "-m", "questlog_query.trino_sync"]
    assert [e["name"] for e in registrar["env"]] == list(REGISTRAR_ENV)
    env = _env(registrar)
    assert env == {
        **env,
        "QUESTLOG_TRINO_URL": "http://127.0.0.1:8080",
        "QUESTLOG_TRINO_CATALOG": "questlog",
        "QUESTLOG_TRINO_SCHEMA": "default",
        "QUESTLOG_TRINO_USER": "questlog-registrar",
        "QUESTLOG_TRINO_SYNC_EVERY_S": "10",
    }
    # the Trino it talks to is its pod's own, on the port Trino listens on
    trino_port = _properties(_one(on, "ConfigMap")["data"]["config.properties"])[
        "http-server.http.port"
    ]
    assert env["QUESTLOG_TRINO_URL"].endswith(f":{trino_port}")
    # the wiring test's view of it: the same command and variables
    played = wiring.containers(on, RELEASE)["trino-registrar"]
    assert played.command == tuple(registrar["command"])
    assert played.env == env
    for objects in (on, production):
        query = _one(objects, "Deployment", f"{RELEASE}-query")["spec"]["template"]["spec"]
        assert _containers(objects)["registrar"]["image"] == query["containers"][0]["image"]
    assert _env(_containers(production)["registrar"])["QUESTLOG_TRINO_SYNC_EVERY_S"] == "30"


class _Recording(dict):
    """An environment that notes each name read from it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_the_registrars_settings_take_and_read_every_variable_the_chart_sets(on):
    """The wiring, as for the other services: the registrar's settings accept the rendered
    environment and read each variable of it (none is set for nothing)."""
    sync = pytest.importorskip("questlog_query.trino_sync")
    rendered = _env(_containers(on)["registrar"])
    env = _Recording(rendered)
    settings = sync.SyncSettings.from_env(env)
    assert set(rendered) <= env.read, f"set by the chart, never read: {set(rendered) - env.read}"
    query_lake = _env_of(on, f"{RELEASE}-query", "query")["QUESTLOG_QUERY_LAKE_ROOT"]
    assert settings == sync.SyncSettings(
        url="http://127.0.0.1:8080",
        lake_root=query_lake,
        catalog="questlog",
        schema="default",
        user="questlog-registrar",
        every_s=10.0,
    )
    # the tables it registers are the lake's, where the query service reads them
    assert sync.wanted(settings.lake_root)["purchase_sword"] == (
        f"{query_lake}/tables/purchase_sword"
    )


def test_both_containers_run_restricted_with_probes_and_resources(on):
    pod = _one(on, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000  # the image's trino user
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    containers = _containers(on)
    for name, c in containers.items():
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        assert c["livenessProbe"], name
        assert c["readinessProbe"], name
    assert containers["registrar"]["securityContext"]["runAsUser"] == 10001  # query's user
    # the pod is Ready only when a table scan answers (the registrar's probe)
    assert containers["registrar"]["readinessProbe"]["exec"]["command"] == [
        "python",
        "-m",
        "questlog_query.trino_sync",
        "--ready",
    ]
    assert _one(on, "ConfigMap")["data"]["questlog_ready.properties"] == "connector.name=tpch\n"
    trino = containers["trino"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert trino[probe]["httpGet"] == {"path": "/v1/info", "port": "http"}, probe
    startup = trino["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180  # 30-60 s on 2 cores


def test_only_the_releases_trino_clients_reach_it(on):
    """No authentication: with NetworkPolicies on, ingress to 8080 only from pods labelled
    as Trino clients (port-forward and the registrar's loopback are not subject to it)."""
    netpol = _one(on, "NetworkPolicy")
    assert (
        netpol["spec"]["podSelector"]["matchLabels"]
        == (_one(on, "Deployment")["spec"]["selector"]["matchLabels"])
    )
    assert netpol["spec"]["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": 8080}],
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/instance": RELEASE,
                            "questlog.dev/trino-client": "true",
                        }
                    }
                }
            ],
        }
    ]
    minimal = _render([chartcheck.CHART / "ci" / "minimal-values.yaml"], ON)
    assert sorted(o["kind"] for o in _trino_objects(minimal)) == [
        "ConfigMap",
        "Deployment",
        "Service",
    ]


@pytest.mark.parametrize("scenario", ["on", "production"])
def test_the_trino_objects_validate_and_meet_the_policy(scenario, request):
    trino = _trino_objects(request.getfixturevalue(scenario))
    assert len(trino) == 4
    assert [str(p) for p in policy.check(trino)] == []
    assert chartcheck.validate_objects(yaml.safe_dump_all(trino), trino) == []


@pytest.mark.parametrize("scenario", ["on", "production"])
def test_the_rendered_memory_settings_let_trino_start(scenario, request):
    """On the rendered files, as Trino reads them: max-memory-per-node + 30% of the heap
    fits the heap, and the container's limit holds the heap plus 512Mi."""
    rendered = request.getfixturevalue(scenario)
    data = _one(rendered, "ConfigMap")["data"]
    heap = _size(next(a for a in data["jvm.config"].split() if a.startswith("-Xmx"))[4:])
    per_node = _size(_properties(data["config.properties"])["query.max-memory-per-node"])
    assert per_node + 0.3 * heap <= heap
    limit = _containers(rendered)["trino"]["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    assert int(limit[:-2]) * GiB >= heap + GiB // 2


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        # 1434MB + 30% of 2048MB = 2048.4MB: one MB over the heap
        (["trino.queryMaxMemoryPerNode=1434MB"], "queryMaxMemoryPerNode"),
        (["trino.heap=1G"], "queryMaxMemoryPerNode"),  # 1GB + 0.3G > 1G
        (["trino.resources.limits.memory=2Gi"], "limits.memory"),  # no room beside the heap
        (["trino.resources.limits.memory=2500Mi"], "limits.memory"),
        (["trino.heap=4G", "trino.resources.limits.memory=4G"], "limits.memory"),  # 4e9 < 4 GiB
    ],
)
def test_memory_settings_trino_would_refuse_fail_the_render(sets, error):
    with pytest.raises(chartcheck.CheckError, match=error):
        chartcheck.render(sets=ON + sets)


@pytest.mark.parametrize(
    "sets",
    [
        ["trino.queryMaxMemoryPerNode=1433MB"],  # 1433 + 614.4 <= 2048
        ["trino.resources.limits.memory=2560Mi"],  # heap + 512Mi exactly
        [
            "trino.heap=1024m",
            "trino.queryMaxMemoryPerNode=716MB",
            "trino.queryMaxMemory=2GB",
            "trino.resources.limits.memory=1536Mi",
        ],
    ],
)
def test_memory_settings_at_the_limits_render(sets):
    objects = _render(sets=ON + sets)
    assert _one(objects, "ConfigMap")


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        (["trino.service.type=NodePort"], "/trino/service/type"),  # no authentication: in-cluster
        (["trino.heap=2GB"], "/trino/heap"),  # a JVM size, not Trino's
        (["trino.queryMaxMemory=1G"], "/trino/queryMaxMemory"),  # Trino's size, not the JVM's
        (["trino.syncEverySeconds=0"], "/trino/syncEverySeconds"),
        (["trino.heapp=2G"], "heapp"),  # a typo
        (["trino.image.tag=latest"], "/trino/image/tag"),
    ],
)
def test_values_trino_cannot_use_are_refused_by_the_schema(sets, error):
    with pytest.raises(chartcheck.CheckError, match=error):
        chartcheck.render(sets=ON + sets)
