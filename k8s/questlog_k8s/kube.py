"""The few Kubernetes API calls questlog's cluster tools make, answering plain dicts.

Objects come back as the API serves them (camelCase keys, as `kubectl get -o json` shows
them), so the logic that reads them is pure and is tested with literal dicts. A missing
object is None, not an exception: "not there yet" is an answer while waiting.

Usage:
    from questlog_k8s import kube
    with kube.connect(kubeconfig=None, context="kind-questlog") as api:
        cluster = kube.Cluster(api)
        cluster.deployment("strimzi", "strimzi-cluster-operator")  # dict or None
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

Obj = dict[str, Any]


class KubeError(RuntimeError):
    """The cluster could not be reached or refused a request; the message says which."""


class Unreachable(KubeError):
    """No answer at all (connection refused, timeout, TLS): no other request will fare
    better, unlike a refusal of one request (403 on Secrets, say)."""


def connect(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client for the kubeconfig's context (default: $KUBECONFIG, then ~/.kube/config),
    or the pod's service account when run inside a cluster without a kubeconfig."""
    try:
        return config.new_client_from_config(
            config_file=kubeconfig, context=context, persist_config=False
        )
    except (ConfigException, FileNotFoundError) as exc:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        raise KubeError(
            f"no usable kubeconfig ({exc}); pass --kubeconfig/--context or set KUBECONFIG"
        ) from exc


class Cluster:
    """Reads for the bootstrap and questlog-k8s, and the one write (a namespace) the
    bootstrap needs, on one API client.

    `timeout` (seconds) bounds each request, so an unreachable server is an answer, not a
    hang; None leaves the client's default (no limit)."""

    def __init__(self, api: client.ApiClient, timeout: float | None = None):
        self._api = api
        self._timeout = timeout
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._ext = client.ApiextensionsV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    def _plain(self, obj: Any) -> Obj:
        return self._api.sanitize_for_serialization(obj)

    def _call(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._timeout is not None:
            kwargs.setdefault("_request_timeout", self._timeout)
        try:
            return call(*args, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(
                f"cannot reach the Kubernetes API at {self._api.configuration.host}: {exc}"
            ) from exc
        except ApiException as exc:
            if exc.status == 0:  # how the client reports a TLS failure: no answer either
                raise Unreachable(
                    f"cannot reach the Kubernetes API at "
                    f"{self._api.configuration.host}: {exc.reason}"
                ) from exc
            raise

    def _read(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj | None:
        try:
            return self._plain(self._call(call, *args, **kwargs))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(_api_error(exc)) from exc

    def crd(self, name: str) -> Obj | None:
        return self._read(self._ext.read_custom_resource_definition, name)

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self._read(self._apps.read_namespaced_deployment, name, namespace)

    def pods(self, namespace: str, match_labels: Mapping[str, str]) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        found = self._read(self._core.list_namespaced_pod, namespace, label_selector=selector)
        return list((found or {}).get("items") or [])

    def statefulset(self, namespace: str, name: str) -> Obj | None:
        return self._read(self._apps.read_namespaced_stateful_set, name, namespace)

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self._read(self._core.read_namespaced_pod, name, namespace)

    def custom(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> Obj | None:
        """A custom resource (Kafka, SparkApplication, ...); None also when its CRD is
        not installed (the API answers 404 for the whole resource type)."""
        return self._read(
            self._custom.get_namespaced_custom_object, group, version, namespace, plural, name
        )

    def secrets(self, namespace: str, match_labels: Mapping[str, str]) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        found = self._read(self._core.list_namespaced_secret, namespace, label_selector=selector)
        return list((found or {}).get("items") or [])

    def service_get(self, namespace: str, service: str, path: str) -> bytes:
        """GET `path` from a Service through the API server's proxy
        (/api/v1/namespaces/N/services/<service>/proxy/<path>); `service` may name a
        port ("name:port"). A refusal (no endpoints, the backend's error) is a KubeError."""
        request = self._api.param_serialize(
            "GET",
            f"/api/v1/namespaces/{{namespace}}/services/{{name}}/proxy/{path}",
            path_params={"namespace": namespace, "name": service},
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self._call(self._api.call_api, *request)
        body = response.read()
        if not 200 <= response.status <= 299:
            raise KubeError(
                f"the API server's proxy answered {response.status} "
                f"{response.reason}: {_message(body)}"
            )
        return body

    def pod_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        tail: int | None = None,
        follow: bool = False,
    ) -> Iterator[bytes]:
        """The container's log, line by line as the server sends it. When the server cannot
        serve it (no node, the kubelet unreachable, the container not started) the
        KubeError carries the server's own message."""
        kwargs: dict[str, Any] = {
            "container": container,
            "tail_lines": tail,
            "follow": follow,
            "_preload_content": False,
        }
        if follow:
            kwargs["_request_timeout"] = None  # a quiet log is no timeout
        try:
            response = self._call(self._core.read_namespaced_pod_log, name, namespace, **kwargs)
        except ApiException as exc:
            raise KubeError(
                f"Kubernetes API answered {exc.status} {exc.reason}: {_message(exc.body)}"
            ) from exc
        try:
            yield from response
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(f"the log stream of pod {name} broke: {exc}") from exc
        finally:
            response.release_conn()

    def apply_namespace(self, manifest: Mapping[str, Any]) -> str:
        """Create the namespace, or add the manifest's labels to the existing one (other
        labels stay). Answers "created" or "updated"."""
        name = manifest["metadata"]["name"]
        try:
            self._call(self._core.create_namespace, client.V1Namespace.from_dict(dict(manifest)))
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise KubeError(_api_error(exc)) from exc
        patch = {"metadata": {"labels": dict(manifest["metadata"].get("labels") or {})}}
        try:
            self._call(self._core.patch_namespace, name, patch)
        except ApiException as exc:
            raise KubeError(_api_error(exc)) from exc
        return "updated"


def _api_error(exc: ApiException) -> str:
    return f"Kubernetes API answered {exc.status} {exc.reason}: {(exc.body or '').strip()[:500]}"


def _message(body: bytes | str | None) -> str:
    """The `message` of a Kubernetes Status body, else the body itself (shortened)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else (body or "")
    try:
        status = json.loads(text)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return text.strip()[:500] or "(no message)"
