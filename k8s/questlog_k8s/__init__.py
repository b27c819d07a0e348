"""questlog on Kubernetes: the pinned Go tools (helm, kubeconform, skaffold), the offline
chart check behind `make chart-check`, and the cluster bootstrap of k8s/bootstrap."""
