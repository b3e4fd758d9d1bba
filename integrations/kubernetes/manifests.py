"""The objects forgebot creates, as plain Kubernetes JSON (validated against the official
schemas in the tests)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MANAGED_BY = "forgebot.io/managed-by"
"""The label on every namespace (and object) forgebot creates; it deletes no namespace without it."""
MANAGED_BY_VALUE = "forgebot"


def namespace(name: str, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {**labels, MANAGED_BY: MANAGED_BY_VALUE},
            "annotations": annotations,
        },
    }


def _quantity_gib(value: Decimal) -> str:
    mebibytes = int(value * 1024)
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"


def _quantity_cpu(value: Decimal) -> str:
    millis = int(value * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def resource_quota(namespace: str, cpu: Decimal, memory_gib: Decimal, pods: int) -> dict[str, Any]:
    cpu_q, mem_q = _quantity_cpu(cpu), _quantity_gib(memory_gib)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": "forgebot-quota",
            "namespace": namespace,
            "labels": {"forgebot.io/managed-by": "forgebot"},
        },
        "spec": {
            "hard": {
                "requests.cpu": cpu_q,
                "limits.cpu": cpu_q,
                "requests.memory": mem_q,
                "limits.memory": mem_q,
                "pods": str(pods),
            }
        },
    }


def limit_range(namespace: str) -> dict[str, Any]:
    # Defaults let pods without explicit resources start inside the quota.
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {
            "name": "forgebot-defaults",
            "namespace": namespace,
            "labels": {"forgebot.io/managed-by": "forgebot"},
        },
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "500m", "memory": "512Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                }
            ]
        },
    }


ENVIRONMENT_ROLE = "forgebot-environment"
"""forgebot's rights on the workloads of a namespace it provisions (a ClusterRole that no
ClusterRoleBinding names: see integrations/kubernetes/rbac.py)."""
BOT_IDENTITY = "system:serviceaccount:forgebot:forgebot"
"""Who forgebot is in the cluster (`FORGEBOT_KUBE_IDENTITY`): the shipped ServiceAccount."""


def bot_role_binding(namespace: str, identity: str = BOT_IDENTITY) -> dict[str, Any]:
    """forgebot's own rights in a namespace it provisions: without it, it could create the
    namespace but not scale its workloads at night, nor deploy a preview into it."""
    parts = identity.split(":")
    subject: dict[str, str]
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        subject = {"kind": "ServiceAccount", "name": parts[3], "namespace": parts[2]}
    else:
        subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": identity}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": ENVIRONMENT_ROLE,
            "namespace": namespace,
            "labels": {"forgebot.io/managed-by": "forgebot"},
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ENVIRONMENT_ROLE,
        },
        "subjects": [subject],
    }


def role_binding(namespace: str, group: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": "forgebot-team-edit",
            "namespace": namespace,
            "labels": {"forgebot.io/managed-by": "forgebot"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    }


def network_policy(namespace: str) -> dict[str, Any]:
    # Default deny for ingress from other namespaces; pods of this namespace still talk freely.
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "forgebot-isolate",
            "namespace": namespace,
            "labels": {"forgebot.io/managed-by": "forgebot"},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
        },
    }


# --- a pull request's preview: its Deployment, Service and Ingress ------------------------------


def preview_labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "forgebot.io/managed-by": "forgebot"}


def preview_deployment(
    namespace: str,
    service: str,
    container: str,
    image: str,
    port: int,
    replicas: int,
    annotations: dict[str, str],
) -> dict[str, Any]:
    labels = preview_labels(service)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 300,
            "selector": {"matchLabels": {"app.kubernetes.io/name": service}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": container,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": port}],
                            "readinessProbe": {"tcpSocket": {"port": "http"}},
                        }
                    ]
                },
            },
        },
    }


def preview_service(namespace: str, service: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service, "namespace": namespace, "labels": preview_labels(service)},
        "spec": {
            "selector": {"app.kubernetes.io/name": service},
            "ports": [{"name": "http", "port": 80, "targetPort": port}],
        },
    }


def preview_ingress(namespace: str, service: str, host: str, ingress_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": service, "namespace": namespace, "labels": preview_labels(service)},
        "spec": {
            "ingressClassName": ingress_class,
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


def allow_from_namespace(namespace: str, source_namespace: str) -> dict[str, Any]:
    """Lets the ingress controller through the environment's default isolation."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "forgebot-allow-ingress",
            "namespace": namespace,
            "labels": {"forgebot.io/managed-by": "forgebot"},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": source_namespace}
                            }
                        }
                    ]
                }
            ],
        },
    }
