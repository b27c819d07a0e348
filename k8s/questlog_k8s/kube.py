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

import os
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

Obj = dict[str, Any]


class KubeError(RuntimeError):
    """The cluster could not be reached or refused a request; the message says which."""


def connect(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """A client for the kubeconfig's context (default: $KUBECONFIG, then ~/.kube/config),
    or the pod's service account when run inside a cluster without a kubeconfig."""
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context,
                                             persist_config=False)
    except (ConfigException, FileNotFoundError) as exc:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        raise KubeError(f"no usable kubeconfig ({exc}); pass --kubeconfig/--context or "
                        "set KUBECONFIG") from exc


class Cluster:
    """Reads and the one write (a namespace) the bootstrap needs, on one API client."""

    def __init__(self, api: client.ApiClient):
        self._api = api
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._ext = client.ApiextensionsV1Api(api)

    def _plain(self, obj: Any) -> Obj:
        return self._api.sanitize_for_serialization(obj)

    def _call(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(f"cannot reach the Kubernetes API at "
                            f"{self._api.configuration.host}: {exc}") from exc

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
