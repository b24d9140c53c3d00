"""Schemas of our own for the custom resources in deploy/examples/ that the Kubernetes schemas lack.

VolumeSnapshotClass and VolumeSnapshot (snapshot.storage.k8s.io/v1) come from CRDs that
kubernetes-csi/external-snapshotter installs, so kubernetes-validate has no schema for them. These
are written here, not taken from the CRDs: they hold the fields of snapshot.storage.k8s.io/v1 that
a user sets (VolumeSnapshotClass: driver, deletionPolicy, parameters; VolumeSnapshot:
spec.volumeSnapshotClassName and spec.source with exactly one of persistentVolumeClaimName and
volumeSnapshotContentName) and, like the strict Kubernetes schemas, refuse any other. `metadata`
is checked against the Kubernetes ObjectMeta of the release the rest is validated against.
`status` is refused on purpose: the snapshot controllers own it, so a manifest setting it is a
mistake.
"""

from __future__ import annotations

from typing import Any

GROUP_VERSION = "snapshot.storage.k8s.io/v1"
# Resolved against the Kubernetes _definitions.json of kubernetes-validate (see kube.py).
OBJECT_META = {"$ref": "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
NON_EMPTY = {"type": "string", "minLength": 1}


def _object(kind: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://kubernetes.io/api/{kind.lower()}/snapshot/v1",
        "type": "object",
        "properties": {
            "apiVersion": {"const": GROUP_VERSION},
            "kind": {"const": kind},
            "metadata": OBJECT_META,
            **properties,
        },
        "required": ["apiVersion", "kind", "metadata", *required],
        "additionalProperties": False,
    }


SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    # Cluster-scoped; driver and deletionPolicy are required; parameters are strings, as for a
    # StorageClass (the sidecar hands them to CreateSnapshot as a map of strings).
    (GROUP_VERSION, "VolumeSnapshotClass"): _object(
        "VolumeSnapshotClass",
        {
            "driver": NON_EMPTY,
            "deletionPolicy": {"enum": ["Delete", "Retain"]},
            "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        ["driver", "deletionPolicy"],
    ),
    # Namespaced; the source is exactly one of a claim (dynamic snapshot) or an existing
    # VolumeSnapshotContent (pre-provisioned); without a class name the cluster's default class
    # for the claim's driver is used.
    (GROUP_VERSION, "VolumeSnapshot"): _object(
        "VolumeSnapshot",
        {
            "spec": {
                "type": "object",
                "properties": {
                    "volumeSnapshotClassName": NON_EMPTY,
                    "source": {
                        "type": "object",
                        "properties": {
                            "persistentVolumeClaimName": NON_EMPTY,
                            "volumeSnapshotContentName": NON_EMPTY,
                        },
                        "additionalProperties": False,
                        "minProperties": 1,
                        "maxProperties": 1,
                    },
                },
                "required": ["source"],
                "additionalProperties": False,
            },
        },
        ["spec"],
    ),
}


def schema_for(document: dict) -> dict[str, Any] | None:
    """Our schema for this document's kind, or None when it is a kind Kubernetes itself defines."""
    return SCHEMAS.get((document.get("apiVersion", ""), document.get("kind", "")))


def is_snapshot_group(document: dict) -> bool:
    """Whether the document is of the snapshot API group at all (any version)."""
    return str(document.get("apiVersion", "")).startswith("snapshot.storage.k8s.io/")
