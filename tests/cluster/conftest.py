"""Tests on a real control plane: the local one (built from Go modules) or KUBECONFIG's cluster."""

from tests.kubecluster import kube_cluster, kube_namespace  # noqa: F401  (fixtures)
