"""Reading pod specs: containers, images, arguments, environment, mounts."""

from __future__ import annotations

import os
import re
from typing import Any, Callable

from .common import CheckFailed, Problems

# What the downward API would give the pods in the quick start.
FAKE_FIELDS = {"spec.nodeName": "check-deploy-node-1", "metadata.namespace": None,
               "metadata.name": "check-deploy-pod-0", "spec.serviceAccountName": "check-deploy"}


def containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"].get("containers", [])


def image_parts(image: str) -> tuple[str, str | None]:
    if "@" in image:
        repository, _, digest = image.partition("@")
        return repository, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = image.rpartition(":")
        return repository, tag
    return image, None


def is_driver(container: dict) -> bool:
    return image_parts(container.get("image", ""))[0].rsplit("/", 1)[-1] == "glusterfs-csi"


def field_value(path: str, namespace: str) -> str:
    if path == "metadata.namespace":
        return namespace
    if path not in FAKE_FIELDS:
        raise CheckFailed([f"downward API field {path} is not one this check knows how to fake"])
    return FAKE_FIELDS[path]


def environment(container: dict, namespace: str, problems: Problems, where: str) -> dict[str, str]:
    values = {}
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            values[name] = str(entry["value"])
        elif "valueFrom" in entry:
            source = entry["valueFrom"]
            if "fieldRef" in source:
                values[name] = field_value(source["fieldRef"]["fieldPath"], namespace)
            else:
                problems.add(f"{where}: env {name} comes from {', '.join(source)}; secrets and config reach "
                             "glusterfs-csi only as mounted files, never as variables")
        else:
            values[name] = ""
    return values


def expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def parse_args(args: list[str], takes_value: Callable[[str], bool], where: str,
               problems: Problems) -> dict[str, str]:
    """--name=value, --name value, -name=value and bare boolean flags."""
    parsed: dict[str, str] = {}
    index = 0
    while index < len(args):
        argument = args[index]
        match = re.match(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)(?:=(.*))?$", argument)
        if not match:
            problems.add(f"{where}: argument '{argument}' is not a flag")
            index += 1
            continue
        name, value = match.group(1), match.group(2)
        if value is None and takes_value(name) and index + 1 < len(args) and not args[index + 1].startswith("-"):
            value = args[index + 1]
            index += 1
        parsed[name] = "true" if value is None else value
        index += 1
    return parsed


def mount_for(container: dict, path: str) -> tuple[dict, str] | None:
    """The volumeMount whose mountPath holds `path`, and the path relative to it."""
    best = None
    for mount in container.get("volumeMounts", []):
        base = mount["mountPath"].rstrip("/") or "/"
        if path == base or path.startswith(base.rstrip("/") + "/"):
            if best is None or len(base) > len(best[0]["mountPath"]):
                best = (mount, os.path.relpath(path, base))
    return best


def host_path(workload: dict, container: dict, path: str) -> tuple[dict, dict, str] | None:
    """Where `path` inside the container is on the host, when it is on a hostPath volume: the
    volumeMount, the volume's hostPath source, and the host path (/var/run spelled /run)."""
    found = mount_for(container, path)
    if found is None:
        return None
    mount, relative = found
    source = volume_named(workload, mount["name"]).get("hostPath")
    if source is None:
        return None
    host = os.path.normpath(os.path.join(source["path"], mount.get("subPath", ""), relative))
    if host == "/var/run" or host.startswith("/var/run/"):
        host = host[len("/var"):]
    return mount, source, host


def volume_named(workload: dict, name: str) -> dict:
    for volume in workload["spec"]["template"]["spec"].get("volumes", []):
        if volume["name"] == name:
            return volume
    return {}


def socket_path(endpoint: str) -> str:
    return endpoint[len("unix://"):] if endpoint.startswith("unix://") else endpoint


def lease_name(name: str) -> str:
    """csi-lib-utils sanitizeName / external-resizer util.SanitizeName."""
    name = re.sub(r"[^a-zA-Z0-9-]", "-", name)
    return name + "X" if name.endswith("-") else name


def named_port(container: dict, port: Any) -> int | None:
    if isinstance(port, int):
        return port
    for entry in container.get("ports", []):
        if entry.get("name") == port:
            return entry["containerPort"]
    return None
