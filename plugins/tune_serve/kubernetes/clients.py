"""The provider hook for code that talks to the cluster outside an operator (serving).

`kubernetes`: KubernetesHook on the configured Airflow Kubernetes connection.
`gke`: GKEKubernetesHook, with the cluster's endpoint and CA looked up through GKEHook,
as GKEStartPodOperator does.
"""
from __future__ import annotations

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

from tune_serve.kubernetes.settings import ClusterSettings


def kubernetes_hook(s: ClusterSettings) -> KubernetesHook:
    if not s.is_gke:
        return KubernetesHook(conn_id=s.kubernetes_conn_id)
    from airflow.providers.google.cloud.hooks.kubernetes_engine import GKEHook, GKEKubernetesHook
    from airflow.providers.google.cloud.operators.kubernetes_engine import GKEClusterAuthDetails

    cluster_url, ssl_ca_cert = GKEClusterAuthDetails(
        cluster_name=s.gke_cluster, project_id=s.gke_project,  # type: ignore[arg-type]  # checked by the backend
        use_internal_ip=s.gke_use_internal_ip,
        use_dns_endpoint=False, cluster_hook=GKEHook(gcp_conn_id=s.gcp_conn_id, location=s.gke_location),
    ).fetch_cluster_info()
    return GKEKubernetesHook(gcp_conn_id=s.gcp_conn_id, cluster_url=cluster_url, ssl_ca_cert=ssl_ca_cert)
