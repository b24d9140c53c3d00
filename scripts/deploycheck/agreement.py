"""agreement: the manifests and examples against the real binary, started with the manifests' arguments."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

from .binary import BinaryFacts, RunningDriver, Stubs, call
from .common import CheckFailed, Context, Problems
from .docs import readme_problems
from .manifests import (PLACEMENTS, check_controller, check_csidriver, check_node, check_probes,
                        check_resources, driver_containers)
from .podspec import FAKE_FIELDS, containers, image_parts, parse_args


def check_running_controller(running: RunningDriver, driver_name: str, version: str, sidecars: dict,
                             problems: Problems) -> None:
    pb, rpc = Stubs.load()
    identity = rpc.IdentityStub(running.channel)
    controller = rpc.ControllerStub(running.channel)
    where = running.driver.where
    info, error = call(identity.GetPluginInfo, pb.GetPluginInfoRequest())
    if problems(error is None, f"{where}: GetPluginInfo failed: {error}"):
        problems(info.name == driver_name, f"{where}: the binary reports driver name {info.name}, the CSIDriver "
                 f"is {driver_name}")
        problems(info.vendor_version == version, f"{where}: vendor_version {info.vendor_version} != --version {version}")
    capabilities, error = call(identity.GetPluginCapabilities, pb.GetPluginCapabilitiesRequest())
    if problems(error is None, f"{where}: GetPluginCapabilities failed: {error}"):
        services = {c.service.type for c in capabilities.capabilities if c.HasField("service")}
        expansion = {c.volume_expansion.type for c in capabilities.capabilities if c.HasField("volume_expansion")}
        problems(pb.PluginCapability.Service.CONTROLLER_SERVICE in services,
                 f"{where}: the binary in this mode offers no Controller service")
        problems(pb.PluginCapability.Service.VOLUME_ACCESSIBILITY_CONSTRAINTS not in services,
                 f"{where}: the binary reports topology, but the manifests grant the provisioner no Node/CSINode "
                 "access and enable no Topology feature")
        if expansion:
            problems("csi-resizer" in sidecars, f"{where}: the binary offers volume expansion but the pod has no "
                     "csi-resizer")
    controller_capabilities, error = call(controller.ControllerGetCapabilities, pb.ControllerGetCapabilitiesRequest())
    if problems(error is None, f"{where}: ControllerGetCapabilities failed: {error}"):
        rpcs = {c.rpc.type for c in controller_capabilities.capabilities}
        Type = pb.ControllerServiceCapability.RPC
        problems(Type.PUBLISH_UNPUBLISH_VOLUME not in rpcs,
                 f"{where}: the binary offers ControllerPublishVolume, but the CSIDriver says attachRequired false "
                 "and no external-attacher runs")
        problems(Type.CREATE_DELETE_VOLUME in rpcs and "csi-provisioner" in sidecars,
                 f"{where}: CREATE_DELETE_VOLUME and a csi-provisioner sidecar must come together")
        problems((Type.EXPAND_VOLUME in rpcs) == ("csi-resizer" in sidecars),
                 f"{where}: EXPAND_VOLUME and a csi-resizer sidecar must come together")
        # csi-snapshotter exits at start when the driver lacks CREATE_DELETE_SNAPSHOT, and without
        # it VolumeSnapshots of the driver's volumes would wait forever.
        offers = Type.CREATE_DELETE_SNAPSHOT in rpcs
        problems(offers == ("csi-snapshotter" in sidecars),
                 f"{where}: the binary offers snapshots (CREATE_DELETE_SNAPSHOT) but the pod has no csi-snapshotter"
                 if offers else f"{where}: the pod runs a csi-snapshotter but the binary does not offer "
                 "CREATE_DELETE_SNAPSHOT: the sidecar would exit at start")
    probe, error = call(identity.Probe, pb.ProbeRequest())
    problems(error is None and probe.ready.value, f"{where}: Probe is not ready: {error}")


def check_running_node(running: RunningDriver, driver_name: str, problems: Problems) -> None:
    pb, rpc = Stubs.load()
    identity = rpc.IdentityStub(running.channel)
    node = rpc.NodeStub(running.channel)
    where = running.driver.where
    info, error = call(identity.GetPluginInfo, pb.GetPluginInfoRequest())
    if problems(error is None, f"{where}: GetPluginInfo failed: {error}"):
        problems(info.name == driver_name, f"{where}: the binary reports driver name {info.name}, the CSIDriver "
                 f"is {driver_name}")
    node_info, error = call(node.NodeGetInfo, pb.NodeGetInfoRequest())
    if problems(error is None, f"{where}: NodeGetInfo failed: {error}"):
        problems(node_info.node_id == FAKE_FIELDS["spec.nodeName"],
                 f"{where}: NodeGetInfo says node_id {node_info.node_id!r}, not the node name "
                 f"{FAKE_FIELDS['spec.nodeName']!r} the downward API gave it")
        problems(not node_info.HasField("accessible_topology"),
                 f"{where}: the node reports topology the manifests do not account for")
    capabilities, error = call(node.NodeGetCapabilities, pb.NodeGetCapabilitiesRequest())
    if problems(error is None, f"{where}: NodeGetCapabilities failed: {error}"):
        rpcs = {c.rpc.type for c in capabilities.capabilities}
        problems(pb.NodeServiceCapability.RPC.VOLUME_MOUNT_GROUP not in rpcs,
                 f"{where}: the node offers VOLUME_MOUNT_GROUP; fsGroupPolicy None would then be the wrong choice")
    probe, error = call(identity.Probe, pb.ProbeRequest())
    problems(error is None and probe.ready.value, f"{where}: Probe is not ready: {error}")


def check_running_placement(context: Context, running: RunningDriver, problems: Problems) -> None:
    """The node says at start-up which mount placement it chose for the one the manifest asks, in the
    words docs/upgrade.md tells admins to look for. Its --cgroup-root and --systemd-socket were
    moved under the temp dir, where there is neither, so it must fall back to none and warn."""
    where = running.driver.where
    requested = running.driver.effective.get("mount-placement")
    if requested is None:
        return  # the binary has no such flag: reported with the manifests
    deadline = time.monotonic() + 5
    while True:
        lines = [r for r in running.records() if "placement" in r and "requested" in r]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not problems(bool(lines), f"{where}: the node logged no line with placement= and requested= at start-up "
                    "(docs/upgrade.md tells admins to look for it)"):
        return
    record = lines[0]
    problems(record["requested"] == requested,
             f"{where}: the node logged requested={record['requested']}, the manifest asks "
             f"--mount-placement={requested}")
    problems(record["placement"] in PLACEMENTS,
             f"{where}: the node logged placement={record['placement']}, none of {', '.join(PLACEMENTS)}")
    problems(record["placement"] == "none" and record.get("level") == "warning",
             f"{where}: with no cgroup tree at --cgroup-root and no socket at --systemd-socket the node must fall back "
             f"to placement none with a warning; it logged {record}")
    upgrade = context.root / "docs" / "upgrade.md"
    text = upgrade.read_text() if upgrade.exists() else ""
    problems(record["message"] in text,
             f"docs/upgrade.md does not quote the start-up line '{record['message']}' by which an admin sees a node's "
             "placement")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret_key(examples: list[tuple[Path, dict]], name: str, namespace: str) -> str | None:
    for _, document in examples:
        if document["kind"] == "Secret" and document["metadata"]["name"] == name and \
                document["metadata"].get("namespace", "default") == namespace:
            data = document.get("stringData", {})
            if "key" in data:
                return str(data["key"])
            if "key" in document.get("data", {}):
                import base64
                return base64.b64decode(document["data"]["key"]).decode()
    return None


def check_examples(context: Context, objects: list[dict], controller: RunningDriver | None,
                   node: RunningDriver | None, driver_name: str, problems: Problems) -> int:
    """The examples against the manifests and the running binary. Returns how many were fed to it."""
    pb, rpc = Stubs.load()
    examples = context.examples()
    namespace = next((o["metadata"]["namespace"] for o in objects if o["kind"] == "StatefulSet"), "")
    readable = {b["metadata"]["namespace"] for b in objects if b["kind"] == "RoleBinding"
                and b["roleRef"]["name"] == "glusterfs-csi-heketi-secret-reader"}
    classes = {d["metadata"]["name"]: d for _, d in examples if d["kind"] == "StorageClass"}
    claims = {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
              for _, d in examples if d["kind"] == "PersistentVolumeClaim"}
    snapshot_classes = {d["metadata"]["name"]: d for _, d in examples if d["kind"] == "VolumeSnapshotClass"}
    snapshots = {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d
                 for _, d in examples if d["kind"] == "VolumeSnapshot"}
    fed = 0
    for path, document in examples:
        kind, name = document["kind"], document["metadata"]["name"]
        where = f"{path.name}: {kind}/{name}"
        if kind == "Secret":
            problems(document.get("type") == "kubernetes.io/glusterfs",
                     f"{where}: the Heketi Secret has type kubernetes.io/glusterfs (the in-tree layout)")
            problems(document["metadata"].get("namespace") == namespace,
                     f"{where}: the Heketi Secret belongs in the driver's namespace {namespace}")
            key = secret_key(examples, name, document["metadata"].get("namespace", "default"))
            problems(key is not None and "PLACEHOLDER" in key,
                     f"{where}: the example key must be an obvious PLACEHOLDER, never a real-looking key")
        elif kind == "StorageClass":
            parameters = {k: str(v) for k, v in document.get("parameters", {}).items()}
            problems(document.get("provisioner") == driver_name,
                     f"{where}: provisioner {document.get('provisioner')} is not the driver {driver_name}")
            problems(document.get("allowVolumeExpansion") is True, f"{where}: allowVolumeExpansion should be true")
            secrets = {}
            for prefix in ["provisioner", "controller-expand"]:
                secret_name = parameters.get(f"csi.storage.k8s.io/{prefix}-secret-name")
                secret_namespace = parameters.get(f"csi.storage.k8s.io/{prefix}-secret-namespace")
                if not problems(secret_name and secret_namespace,
                                f"{where}: needs csi.storage.k8s.io/{prefix}-secret-name and -namespace"):
                    continue
                problems(secret_namespace in readable,
                         f"{where}: {prefix} Secret is in namespace {secret_namespace}, where the controller may "
                         f"not read Secrets (it may in: {', '.join(sorted(readable)) or 'none'})")
                key = secret_key(examples, secret_name, secret_namespace)
                if problems(key is not None, f"{where}: no example Secret {secret_namespace}/{secret_name} with key 'key'"):
                    secrets = {"key": key}
            if controller is None:
                continue
            # CreateVolume as external-provisioner sends it, Heketi moved to a closed local port:
            # parameter validation must pass, and the call must fail only for want of Heketi.
            sent, reached = closed_heketi(parameters)
            capability = pb.VolumeCapability(
                mount=pb.VolumeCapability.MountVolume(mount_flags=document.get("mountOptions", [])),
                access_mode=pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER))
            request = pb.CreateVolumeRequest(name=f"pvc-check-deploy-{name}", parameters=sent, secrets=secrets,
                                             volume_capabilities=[capability],
                                             capacity_range=pb.CapacityRange(required_bytes=10 << 30))
            response, error = call(rpc.ControllerStub(controller.channel).CreateVolume, request, timeout=30)
            fed += 1
            problems(answered_unavailable(error, reached),
                     f"{where}: the binary answered CreateVolume with {describe(error)} — expected only UNAVAILABLE "
                     f"for the unreachable Heketi {', '.join(reached)}")
        elif kind == "VolumeSnapshotClass":
            fed += check_snapshot_class(document, where, examples, readable, controller, driver_name, problems)
        elif kind == "VolumeSnapshot":
            namespace_of = document["metadata"].get("namespace", "default")
            source = document["spec"]["source"].get("persistentVolumeClaimName")
            problems(source is None or (namespace_of, source) in claims,
                     f"{where}: source claim {source} is no example PVC in namespace {namespace_of} (a VolumeSnapshot "
                     "takes a claim of its own namespace)")
            class_name = document["spec"].get("volumeSnapshotClassName")
            problems(class_name in snapshot_classes,
                     f"{where}: volumeSnapshotClassName {class_name} is no example VolumeSnapshotClass")
            claim = claims.get((namespace_of, source))
            if claim is not None:
                claim_class = classes.get(claim["spec"].get("storageClassName"), {})
                problems(claim_class.get("provisioner") == driver_name,
                         f"{where}: source claim {source} is not a volume of {driver_name}")
        elif kind == "PersistentVolumeClaim":
            class_name = document["spec"].get("storageClassName")
            problems(class_name == "" or class_name in classes,
                     f"{where}: storageClassName {class_name} is no example StorageClass")
            source = document["spec"].get("dataSource") or document["spec"].get("dataSourceRef")
            if source and source.get("kind") == "VolumeSnapshot":
                fed += check_restore(document, source, where, examples, classes, claims, snapshots, controller,
                                     problems)
        elif kind == "Pod":
            for volume in document["spec"].get("volumes", []):
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                if claim:
                    problems((document["metadata"].get("namespace", "default"), claim) in claims,
                             f"{where}: claim {claim} is no example PVC in the pod's namespace")
        elif kind == "PersistentVolume":
            csi = document["spec"].get("csi", {})
            problems(csi.get("driver") == driver_name, f"{where}: spec.csi.driver is not {driver_name}")
            handle = csi.get("volumeHandle", "")
            attributes = {k: str(v) for k, v in csi.get("volumeAttributes", {}).items()}
            if handle.startswith("v1:"):
                # Sources/CSICore/VolumeID.swift: v1:<32 lower-case hex>:<http(s) URL or empty>, <= 128 bytes.
                match = re.fullmatch(r"v1:([0-9a-f]{32}):((?:https?://\S+)?)", handle)
                problems(match is not None and len(handle.encode()) <= 128,
                         f"{where}: volumeHandle {handle} is not v1:<Heketi volume ID>:<Heketi URL> (<= 128 bytes)")
                if match:
                    problems(attributes.get("heketiVolumeID", match.group(1)) == match.group(1),
                             f"{where}: heketiVolumeID differs from the ID in the volumeHandle")
                for ref in ["controllerExpandSecretRef"]:
                    secret = csi.get(ref)
                    if problems(secret is not None, f"{where}: a Heketi volume needs {ref} to be expandable"):
                        problems(secret_key(examples, secret["name"], secret["namespace"]) is not None,
                                 f"{where}: {ref} names no example Secret")
            if node is None:
                continue
            # NodeStageVolume with the PV's context and mount options, plus one option the driver
            # rejects by name: the answer must name that option, which the driver checks only
            # after the volume context and the other options passed. Nothing is mounted.
            sentinel = "check-deploy-sentinel"
            capability = pb.VolumeCapability(
                mount=pb.VolumeCapability.MountVolume(mount_flags=[*document["spec"].get("mountOptions", []), sentinel]),
                access_mode=pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER))
            # Where kubelet stages a CSI volume, under the node's (relocated) --kubelet-dir.
            digest = hashlib.sha256(handle.encode()).hexdigest()
            staging = (node.kubelet_dir / "plugins/kubernetes.io/csi" / driver_name / digest / "globalmount"
                       if node.kubelet_dir is not None else node.temp / "staging" / name)
            request = pb.NodeStageVolumeRequest(volume_id=handle, staging_target_path=str(staging),
                                                volume_capability=capability, volume_context=attributes)
            response, error = call(rpc.NodeStub(node.channel).NodeStageVolume, request)
            fed += 1
            problems(error is not None and sentinel in (error.details() or ""),
                     f"{where}: the node rejected the PV's volume context or mount options: "
                     f"{error.details() if error else 'it tried to mount'}")
    return fed


def request_bytes(claim: dict) -> int | None:
    """A claim's storage request in bytes (None if missing or not a quantity)."""
    from .kube import canonical_quantity

    text = str(claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage", ""))
    if canonical_quantity(text) is None:
        return None
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?", text)
    if match is None:
        return None
    powers = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
              "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
    return int(match.group(1)) * powers.get(match.group(2) or "", 1)


def closed_heketi(parameters: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """StorageClass parameters as external-provisioner sends them, Heketi moved to a closed local
    port: the call must pass validation and fail only for want of Heketi. Returns them and the URLs."""
    sent = dict(parameters)
    for key in list(sent):
        if key.lower() == "resturl":
            sent[key] = f"http://127.0.0.1:{closed_port()}"
    sent = {k: v for k, v in sent.items() if not re.match(r"csi\.storage\.k8s\.io/.*-secret-", k)}
    sent.update({"csi.storage.k8s.io/pvc/name": "check-deploy", "csi.storage.k8s.io/pvc/namespace": "default",
                 "csi.storage.k8s.io/pv/name": "pvc-check-deploy"})
    return sent, [v for k, v in sent.items() if k.lower() == "resturl"]


def answered_unavailable(error, urls: list[str]) -> bool:
    """The answer of a call whose Heketi is a closed port: UNAVAILABLE naming it, nothing else."""
    import grpc

    return error is not None and error.code() == grpc.StatusCode.UNAVAILABLE and \
        all(url in (error.details() or "") for url in urls)


def describe(error) -> str:
    return f"{error.code().name}: {error.details()}" if error is not None else "OK"


# A Heketi volume ID for requests naming a volume or snapshot that does not exist.
FAKE_HEKETI_ID = "0123456789abcdef0123456789abcdef"


def check_snapshot_class(document: dict, where: str, examples: list[tuple[Path, dict]], readable: set[str],
                         controller: RunningDriver | None, driver_name: str, problems: Problems) -> int:
    """A VolumeSnapshotClass: this driver's, its Secret readable and present, and its parameters
    accepted by the binary's CreateSnapshot (as csi-snapshotter sends it, without the
    csi.storage.k8s.io/ keys it consumes itself). Returns how many calls were made."""
    parameters = {k: str(v) for k, v in (document.get("parameters") or {}).items()}
    problems(document.get("driver") == driver_name, f"{where}: driver {document.get('driver')} is not {driver_name}")
    secrets = {}
    for prefix in ["snapshotter", "snapshotter-list"]:
        name = parameters.get(f"csi.storage.k8s.io/{prefix}-secret-name")
        namespace = parameters.get(f"csi.storage.k8s.io/{prefix}-secret-namespace")
        if not problems(bool(name) == bool(namespace),
                        f"{where}: csi.storage.k8s.io/{prefix}-secret-name and -namespace go together"):
            continue
        if not name:
            continue
        problems(namespace in readable,
                 f"{where}: {prefix} Secret is in namespace {namespace}, where the controller may not read Secrets "
                 f"(it may in: {', '.join(sorted(readable)) or 'none'})")
        key = secret_key(examples, name, namespace)
        if problems(key is not None, f"{where}: no example Secret {namespace}/{name} with key 'key'"):
            secrets = {"key": key}
    if controller is None:
        return 0
    pb, rpc = Stubs.load()
    # The sidecar strips the csi.storage.k8s.io/ keys it knows and adds the VolumeSnapshot's names.
    sent = {k: v for k, v in parameters.items() if not k.startswith("csi.storage.k8s.io/")}
    sent.update({"csi.storage.k8s.io/volumesnapshot/name": "check-deploy",
                 "csi.storage.k8s.io/volumesnapshot/namespace": "default",
                 "csi.storage.k8s.io/volumesnapshotcontent/name": "snapcontent-check-deploy"})
    url = f"http://127.0.0.1:{closed_port()}"
    request = pb.CreateSnapshotRequest(name=f"snapshot-check-deploy-{document['metadata']['name']}",
                                       source_volume_id=f"v1:{FAKE_HEKETI_ID}:{url}", secrets=secrets,
                                       parameters=sent)
    _, error = call(rpc.ControllerStub(controller.channel).CreateSnapshot, request, timeout=30)
    problems(answered_unavailable(error, [url]),
             f"{where}: the binary answered CreateSnapshot with {describe(error)} — expected only UNAVAILABLE for the "
             f"unreachable Heketi {url}")
    return 1


def check_restore(claim: dict, source: dict, where: str, examples: list[tuple[Path, dict]], classes: dict[str, dict],
                  claims: dict, snapshots: dict, controller: RunningDriver | None, problems: Problems) -> int:
    """A claim restored from a VolumeSnapshot: the snapshot is an example of the claim's namespace,
    the claim asks at least the snapshot's source size (its restore size), and the binary accepts
    the restore (CreateVolume with a snapshot source on the class's Heketi). Returns calls made."""
    namespace = claim["metadata"].get("namespace", "default")
    problems(source.get("apiGroup") == "snapshot.storage.k8s.io",
             f"{where}: dataSource kind VolumeSnapshot needs apiGroup snapshot.storage.k8s.io")
    snapshot = snapshots.get((namespace, source.get("name")))
    if not problems(snapshot is not None and not source.get("namespace"),
                    f"{where}: dataSource {source.get('name')} is no example VolumeSnapshot in namespace {namespace}"):
        return 0
    origin = claims.get((namespace, snapshot["spec"]["source"].get("persistentVolumeClaimName")))
    wanted, restore = request_bytes(claim), request_bytes(origin) if origin else None
    problems(wanted is not None and (restore is None or wanted >= restore),
             f"{where}: requests {claim['spec'].get('resources', {}).get('requests', {}).get('storage')}, less than "
             f"the snapshot's restore size (its source claim's "
             f"{origin['spec']['resources']['requests']['storage'] if origin else '?'}): the provisioner refuses that")
    document = classes.get(claim["spec"].get("storageClassName"))
    if controller is None or document is None:
        return 0
    pb, rpc = Stubs.load()
    parameters = {k: str(v) for k, v in document.get("parameters", {}).items()}
    sent, urls = closed_heketi(parameters)
    key = secret_key(examples, parameters.get("csi.storage.k8s.io/provisioner-secret-name", ""),
                     parameters.get("csi.storage.k8s.io/provisioner-secret-namespace", ""))
    # The snapshot must be on the Heketi the class names (a restore is a Heketi clone).
    snapshot_id = f"s1:{FAKE_HEKETI_ID}:{urls[0] if urls else ''}"
    capability = pb.VolumeCapability(
        mount=pb.VolumeCapability.MountVolume(mount_flags=document.get("mountOptions", [])),
        access_mode=pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER))
    request = pb.CreateVolumeRequest(
        name=f"pvc-check-deploy-{claim['metadata']['name']}", parameters=sent, volume_capabilities=[capability],
        secrets={"key": key} if key is not None else {},
        capacity_range=pb.CapacityRange(required_bytes=wanted or 0),
        volume_content_source=pb.VolumeContentSource(
            snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot_id)))
    _, error = call(rpc.ControllerStub(controller.channel).CreateVolume, request, timeout=30)
    problems(answered_unavailable(error, urls),
             f"{where}: the binary answered CreateVolume from snapshot {snapshot_id} with {describe(error)} — expected "
             f"only UNAVAILABLE for the unreachable Heketi {', '.join(urls)}")
    return 1


def check_agreement(context: Context) -> str:
    """deploy/ with the examples, then every overlay, against the binary."""
    facts = context.facts()
    problems = Problems()
    # The binary's own consistency: every flag has its variable and vice versa.
    flags = {n for n in facts.options if n not in ("help", "version")}
    problems({BinaryFacts.variable(n) for n in flags} == facts.variables,
             f"the binary's flags and variables do not pair up: {sorted(flags)} vs {sorted(facts.variables)}")
    placement_help = facts.descriptions.get("mount-placement")
    if problems(placement_help is not None, "the binary has no --mount-placement (node: where the FUSE clients run)"):
        words = set(re.findall(r"[a-z]+", placement_help.split("(default")[0]))
        for value in PLACEMENTS:
            problems(value in words, f"the binary's --mount-placement help does not offer {value}: {placement_help}")
    # README.md's command line and variable list against the binary.
    for problem in readme_problems(context.root, facts):
        problems.add(f"README.md: {problem}")
    summary = ""
    for directory in context.kustomizations():
        if directory == context.deploy / "base":
            continue  # deploy/ applies the base as it is
        main = directory == context.deploy
        found = Problems()
        result = agree(context, facts, context.rendered_objects(directory), main, found)
        label = "" if main else f"{directory.relative_to(context.root)}: "
        problems.items += [label + item for item in found.items]
        if main:
            summary = result
    problems.raise_if_any()
    overlays = len(context.kustomizations()) - 2
    return summary + (f"; {overlays} overlay{'s' if overlays != 1 else ''} too" if overlays > 0 else "")


def agree(context: Context, facts: BinaryFacts, objects: list[dict], with_examples: bool,
          problems: Problems) -> str:
    """The agreement of one rendered kustomization; problems go to `problems`."""
    csidriver = check_csidriver(objects, problems)
    driver_name = csidriver["metadata"]["name"] if csidriver else facts.options.get("driver-name", "")
    drivers = driver_containers(objects, facts, problems)
    by_mode = {d.mode: d for d in drivers}
    problems(sorted(by_mode) == ["controller", "node"] and len(drivers) == 2,
             f"expected one glusterfs-csi container in controller mode and one in node mode, found "
             f"{[(d.where, d.mode) for d in drivers]}")
    for driver in drivers:
        problems(driver.effective.get("driver-name") == driver_name,
                 f"{driver.where}: driver name {driver.effective.get('driver-name')} (flag, variable or the binary's "
                 f"default) is not the CSIDriver's {driver_name}")
        problems(driver.effective.get("endpoint", "").startswith("unix://") or
                 driver.effective.get("endpoint", "").startswith("/"),
                 f"{driver.where}: the endpoint must be a Unix socket")
        repository, tag = image_parts(driver.container.get("image", ""))
        problems(tag == facts.version, f"{driver.where}: image tag {tag} is not the binary's version {facts.version}")
        grace = int(driver.effective.get("shutdown-grace", "25"))
        termination = driver.workload["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        problems(grace < termination, f"{driver.where}: --shutdown-grace {grace} must be below "
                 f"terminationGracePeriodSeconds {termination}")
        check_resources(driver.workload, problems)
    sidecars: dict[str, dict] = {}
    if "controller" in by_mode:
        sidecars = check_controller(objects, by_mode["controller"], driver_name, facts, problems)
        check_probes(by_mode["controller"], sidecars.get("livenessprobe"), problems)
    if "node" in by_mode:
        check_node(by_mode["node"], driver_name, problems)
        node_sidecars = {image_parts(c["image"])[0].rsplit("/", 1)[-1]: c for c in containers(by_mode["node"].workload)}
        liveness = node_sidecars.get("livenessprobe")
        if liveness is not None:
            parsed = parse_args(liveness.get("args", []), lambda n: True, "node livenessprobe", Problems())
            check_probes(by_mode["node"], {"args": parsed}, problems)
    if problems.items:
        return ""

    # The binary itself, started with the manifests' arguments.
    temp = Path(tempfile.mkdtemp(prefix="check-deploy-"))
    running: dict[str, RunningDriver] = {}
    fed = 0
    try:
        for mode in ["controller", "node"]:
            running[mode] = RunningDriver(facts.path, by_mode[mode], temp / mode)
        for mode, driver in running.items():
            driver.wait_ready()
            serving = driver.serving_line()
            problems(serving.get("driver") == driver_name and serving.get("mode") == mode,
                     f"{driver.driver.where}: the binary logged {serving or 'no serving line'}, expected driver "
                     f"{driver_name} in mode {mode}")
            problems(serving.get("endpoint") == f"unix://{driver.socket}",
                     f"{driver.driver.where}: the binary serves {serving.get('endpoint')}, expected "
                     f"unix://{driver.socket}")
        check_running_controller(running["controller"], driver_name, facts.version, sidecars, problems)
        check_running_node(running["node"], driver_name, problems)
        check_running_placement(context, running["node"], problems)
        if with_examples:
            fed = check_examples(context, objects, running["controller"], running["node"], driver_name, problems)
    except CheckFailed as failure:
        problems.items += failure.problems
    finally:
        for mode, driver in running.items():
            status = driver.stop()
            problems(status == 0, f"{driver.driver.where}: exited with {status} after SIGTERM, expected 0:\n"
                     + "\n".join(driver.log().splitlines()[-5:]))
        shutil.rmtree(temp, ignore_errors=True)
    return (f"driver {driver_name} {facts.version}: {sum(len(d.args) for d in drivers)} flags and "
            f"{sum(len(d.env) for d in drivers)} variables accepted, sockets/registration/leases/probes/mount "
            f"placement agree, both modes served and answered, {fed} examples accepted by the binary; README.md "
            "shows every flag and variable")
