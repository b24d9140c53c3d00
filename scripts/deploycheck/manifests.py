"""agreement, static part: the rendered manifests against the binary's flags, variables and defaults."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .binary import BinaryFacts
from .common import Problems
from .podspec import (FAKE_FIELDS, containers, environment, expand, host_path, image_parts, is_driver,
                      lease_name, mount_for, named_port, parse_args, socket_path, volume_named)
from .sidecars import (KUBE_API_DEFAULTS, LEASE_PREFIXES, PROVISIONER_SNAPSHOT_RBAC, SIDECAR_DEFAULTS, SIDECAR_FLAGS,
                       SIDECAR_RBAC)

# --mount-placement: where the node plugin runs each volume's glusterfs client (docs/upgrade.md).
PLACEMENTS = ("auto", "systemd", "cgroup", "none")
# What cgroup and systemd placement use on the host: the cgroup tree (the v2 mount, or the
# directory of the v1 hierarchies), and systemd's private socket or the system bus socket (the
# binary takes a --systemd-socket ending in dbus/system_bus_socket for the latter).
HOST_CGROUP_ROOT = "/sys/fs/cgroup"
HOST_SYSTEMD_PRIVATE = "/run/systemd/private"
HOST_SYSTEM_BUS = "/run/dbus/system_bus_socket"


@dataclass
class DriverContainer:
    workload: dict
    container: dict
    where: str
    mode: str
    args: dict[str, str]
    env: dict[str, str]
    effective: dict[str, str]

    @property
    def namespace(self) -> str:
        return self.workload["metadata"].get("namespace", "default")


def driver_containers(objects: list[dict], facts: BinaryFacts, problems: Problems) -> list[DriverContainer]:
    found = []
    for workload in objects:
        if workload["kind"] not in ("StatefulSet", "DaemonSet", "Deployment"):
            continue
        for container in containers(workload):
            if not is_driver(container):
                continue
            where = f"{workload['kind']}/{workload['metadata']['name']} container {container['name']}"
            namespace = workload["metadata"].get("namespace", "default")
            env = environment(container, namespace, problems, where)
            for name in env:
                if name.startswith("GLUSTERFS_CSI_"):
                    problems(name in facts.variables,
                             f"{where}: env {name} is not a variable glusterfs-csi reads "
                             f"(it reads {', '.join(sorted(facts.variables))})")
            used = {m for a in container.get("args", []) for m in re.findall(r"\$\((\w+)\)", a)}
            for name in env:
                problems(name.startswith("GLUSTERFS_CSI_") or name in used,
                         f"{where}: env {name} is neither a GLUSTERFS_CSI_* variable nor used in args")
            problems(not container.get("command"),
                     f"{where}: 'command' replaces the image's entrypoint; give arguments in 'args'")
            args = [expand(a, env) for a in container.get("args", [])]
            parsed = parse_args(args, lambda n: n in facts.takes_value, where, problems)
            for name in parsed:
                problems(name in facts.options, f"{where}: glusterfs-csi has no flag --{name} "
                         f"(its flags: {', '.join('--' + o for o in sorted(facts.options))})")
            effective = {}
            for name, default in facts.options.items():
                if name in parsed:
                    effective[name] = parsed[name]
                elif env.get(BinaryFacts.variable(name)):
                    effective[name] = env[BinaryFacts.variable(name)]
                elif default is not None:
                    effective[name] = default
            mode = effective.get("mode", "")
            found.append(DriverContainer(workload, container, where, mode, parsed, env, effective))
    return found


def check_csidriver(objects: list[dict], problems: Problems) -> dict | None:
    drivers = [o for o in objects if o["kind"] == "CSIDriver"]
    if not problems(len(drivers) == 1, f"deploy/ must render exactly one CSIDriver, found {len(drivers)}"):
        return None
    driver = drivers[0]
    spec = driver.get("spec", {})
    name = driver["metadata"]["name"]
    problems(spec.get("attachRequired") is False,
             f"CSIDriver {name}: attachRequired must be false (there is nothing to attach, and the "
             "controller offers no ControllerPublishVolume)")
    problems(spec.get("podInfoOnMount") is False,
             f"CSIDriver {name}: podInfoOnMount must be false (the node plugin reads no pod info)")
    problems(spec.get("fsGroupPolicy") == "None",
             f"CSIDriver {name}: fsGroupPolicy must be None (kubelet must not chown shared GlusterFS "
             f"volumes), got {spec.get('fsGroupPolicy')!r}")
    problems(spec.get("volumeLifecycleModes") == ["Persistent"],
             f"CSIDriver {name}: volumeLifecycleModes must be [Persistent], got {spec.get('volumeLifecycleModes')}")
    return driver


def check_sidecars(workload: dict, driver: DriverContainer, problems: Problems) -> dict[str, dict]:
    """Sidecar images pinned and known, flags known, sockets on the driver's socket."""
    sidecars = {}
    driver_socket = socket_path(driver.effective.get("endpoint", ""))
    driver_mount = mount_for(driver.container, driver_socket)
    if not problems(driver_mount is not None,
                    f"{driver.where}: the socket {driver_socket} is on no volumeMount, so no sidecar can "
                    "reach it"):
        return sidecars
    for container in containers(workload):
        if is_driver(container):
            continue
        where = f"{workload['kind']}/{workload['metadata']['name']} container {container['name']}"
        repository, tag = image_parts(container.get("image", ""))
        if not problems(tag is not None and tag != "latest",
                        f"{where}: image {container.get('image')} is not pinned to a version"):
            continue
        known = SIDECAR_FLAGS.get(repository)
        if not problems(known is not None, f"{where}: unknown sidecar image {repository}"):
            continue
        flags = known.get(tag)
        if not problems(flags is not None,
                        f"{where}: {repository}:{tag} is not a version whose flags this check knows "
                        f"({', '.join(known)}); read its flags from its source and update SIDECAR_FLAGS"):
            continue
        env = environment(container, workload["metadata"].get("namespace", "default"), problems, where)
        parsed = parse_args([expand(a, env) for a in container.get("args", [])], lambda n: True, where, problems)
        for name, value in parsed.items():
            problems(name in flags, f"{where}: {repository}:{tag} has no flag -{name}")
            problems("$(" not in value, f"{where}: -{name}={value} uses a variable the container does not set")
        address = parsed.get("csi-address", SIDECAR_DEFAULTS["csi-address"])
        sidecar_mount = mount_for(container, address)
        if problems(sidecar_mount is not None,
                    f"{where}: --csi-address {address} is on no volumeMount of the container"):
            same = (sidecar_mount[0]["name"] == driver_mount[0]["name"]
                    and os.path.normpath(sidecar_mount[1]) == os.path.normpath(driver_mount[1]))
            problems(same, f"{where}: --csi-address {address} is not the driver's socket: the driver serves "
                     f"{driver_socket} (volume {driver_mount[0]['name']}, {driver_mount[1]})")
        sidecars[repository.rsplit("/", 1)[-1]] = {"container": container, "args": parsed, "where": where}
    return sidecars


def check_resources(workload: dict, problems: Problems) -> None:
    for container in containers(workload):
        requests = container.get("resources", {}).get("requests", {})
        where = f"{workload['kind']}/{workload['metadata']['name']} container {container['name']}"
        problems("cpu" in requests and "memory" in requests, f"{where}: needs cpu and memory requests")


def check_controller(objects: list[dict], driver: DriverContainer, driver_name: str, facts: BinaryFacts,
                     problems: Problems) -> dict[str, dict]:
    workload = driver.workload
    where = driver.where
    problems(workload["kind"] == "StatefulSet", f"{where}: the controller must be a StatefulSet")
    problems(workload["spec"].get("replicas", 1) == 1, f"{where}: the controller runs exactly one replica")
    sidecars = check_sidecars(workload, driver, problems)
    socket_mount = mount_for(driver.container, socket_path(driver.effective.get("endpoint", "")))
    if socket_mount:
        problems("emptyDir" in volume_named(workload, socket_mount[0]["name"]),
                 f"{where}: the controller socket belongs on an emptyDir volume")
    provisioner = sidecars.get("csi-provisioner")
    if problems(provisioner is not None, f"{where}: the controller pod has no csi-provisioner"):
        args = provisioner["args"]
        problems(args.get("extra-create-metadata") == "true",
                 f"{provisioner['where']}: needs --extra-create-metadata (volumenameprefix uses PVC name "
                 "and namespace)")
        timeout = parse_duration(args.get("timeout", "10s"))
        problems(timeout is not None and timeout >= 120,
                 f"{provisioner['where']}: --timeout {args.get('timeout', '10s (default)')} is too short for "
                 "Heketi creating real volumes; use minutes (300s)")
        problems(args.get("leader-election") == "true", f"{provisioner['where']}: needs --leader-election")
    resizer = sidecars.get("csi-resizer")
    if problems(resizer is not None, f"{where}: the controller pod has no csi-resizer"):
        problems(resizer["args"].get("leader-election") == "true", f"{resizer['where']}: needs --leader-election")
        problems(resizer["args"].get("handle-volume-inuse-error") == "false",
                 f"{resizer['where']}: needs --handle-volume-inuse-error=false (expansion is online, and "
                 "RBAC grants no pod access)")
    snapshotter = sidecars.get("csi-snapshotter")
    if snapshotter is not None:
        args = snapshotter["args"]
        problems(args.get("leader-election") == "true", f"{snapshotter['where']}: needs --leader-election")
        timeout = parse_duration(args.get("timeout", "1m"))
        problems(timeout is not None and timeout >= 120,
                 f"{snapshotter['where']}: --timeout {args.get('timeout', '1m (default)')} is too short for a Heketi "
                 "clone (a gluster snapshot and a new volume, queued like a create); use minutes (300s)")
        if provisioner is not None:
            sweep = parse_duration(provisioner["args"].get("snapshot-orphan-sweep-interval", "5m"))
            problems(sweep != 0,
                     f"{provisioner['where']}: --snapshot-orphan-sweep-interval=0 with a csi-snapshotter in the pod: "
                     "a snapshot-protection finalizer left by an interrupted restore would then block deleting "
                     "that VolumeSnapshot for good")
    # Client-side rate limits: the default 5 qps is what bulk work waits on.
    for name in ["csi-provisioner", "csi-resizer", "csi-snapshotter"]:
        sidecar = sidecars.get(name)
        if sidecar is None:
            continue
        values = {}
        for flag, default in KUBE_API_DEFAULTS.items():
            try:
                values[flag] = float(sidecar["args"].get(flag, default))
            except ValueError:
                values[flag] = default
            problems(values[flag] > default,
                     f"{sidecar['where']}: --{flag} {sidecar['args'].get(flag, f'{default:g} (default)')} keeps the "
                     f"client-side rate limit at or below the default {default:g}, which bulk provisioning waits on "
                     "(100 claims: 44 s at 5/10 qps/burst, 28 s at 100/200); raise it")
        problems(values["kube-api-burst"] >= values["kube-api-qps"],
                 f"{sidecar['where']}: --kube-api-burst {values['kube-api-burst']:g} is below --kube-api-qps "
                 f"{values['kube-api-qps']:g}")
    problems("livenessprobe" in sidecars, f"{where}: the controller pod has no livenessprobe")
    # The key: a file from a Secret volume, never an arg value or a variable.
    key_file = driver.effective.get("heketi-key-file")
    if problems(key_file is not None, f"{where}: needs --heketi-key-file (the Heketi admin key from a Secret)"):
        found = mount_for(driver.container, key_file)
        if problems(found is not None, f"{where}: --heketi-key-file {key_file} is on no volumeMount"):
            mount, relative = found
            secret = volume_named(workload, mount["name"]).get("secret")
            if problems(secret is not None, f"{where}: --heketi-key-file {key_file} is not on a Secret volume"):
                items = secret.get("items")
                key = next((i["key"] for i in items if i["path"] == relative), None) if items else relative
                problems(key == "key", f"{where}: --heketi-key-file {key_file} must be the Secret's key 'key' "
                         "(the in-tree layout)")
                secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
                problems(secret.get("secretName") not in secrets,
                         f"{where}: the base must not contain the Heketi Secret (it would overwrite the real key)")
    for container in containers(workload):
        for argument in container.get("args", []):
            problems(not re.search(r"(?i)(restuserkey|heketi-key=|--key=|password)", argument),
                     f"{where}: argument '{argument}' looks like a credential in args")
    # Leases: the names the sidecars derive from the driver name.
    roles = [o for o in objects if o["kind"] == "Role"]
    lease_names = {name for role in roles for rule in role.get("rules", [])
                   if "leases" in rule.get("resources", []) for name in rule.get("resourceNames", [])}
    expected_leases = {lease_name(prefix + driver_name) for name, prefix in LEASE_PREFIXES.items() if name in sidecars}
    for expected in sorted(expected_leases):
        problems(expected in lease_names,
                 f"Roles: no lease rule for '{expected}', the lease a sidecar derives from driver name {driver_name}")
    for stale in sorted(lease_names - expected_leases):
        problems.add(f"Roles: lease '{stale}' is not one the sidecars use for driver {driver_name}")
    check_rbac(objects, workload, sidecars, sorted(expected_leases), problems)
    return sidecars


class Grants:
    """What a ServiceAccount may do, from the rendered (Cluster)Roles and their bindings."""

    def __init__(self, objects: list[dict], account: str, namespace: str):
        def binds(binding: dict) -> bool:
            return any(s.get("kind") == "ServiceAccount" and s.get("name") == account
                       and s.get("namespace", binding["metadata"].get("namespace")) == namespace
                       for s in binding.get("subjects") or [])

        def rules(kind: str, name: str, role_namespace: str | None) -> list[dict]:
            for role in objects:
                if role["kind"] == kind and role["metadata"]["name"] == name and \
                        (kind == "ClusterRole" or role["metadata"].get("namespace") == role_namespace):
                    return role.get("rules") or []
            return []

        self.namespace = namespace
        self.cluster: list[dict] = []
        self.namespaced: list[dict] = []
        for binding in objects:
            if binding["kind"] == "ClusterRoleBinding" and binds(binding):
                self.cluster += rules(binding["roleRef"]["kind"], binding["roleRef"]["name"], None)
            elif binding["kind"] == "RoleBinding" and binding["metadata"].get("namespace") == namespace \
                    and binds(binding):
                self.namespaced += rules(binding["roleRef"]["kind"], binding["roleRef"]["name"], namespace)

    @staticmethod
    def _allows(rule: dict, group: str, resource: str, verb: str, name: str | None) -> bool:
        names = rule.get("resourceNames") or []
        return (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", [])) and \
            (resource in rule.get("resources", []) or "*" in rule.get("resources", [])) and \
            (verb in rule.get("verbs", []) or "*" in rule.get("verbs", [])) and \
            (not names or (name is not None and name in names))

    def cluster_wide(self, group: str, resource: str, verb: str) -> bool:
        return any(self._allows(r, group, resource, verb, None) for r in self.cluster)

    def in_namespace(self, group: str, resource: str, verb: str, name: str | None = None) -> bool:
        return any(self._allows(r, group, resource, verb, name) for r in self.cluster + self.namespaced)


def check_rbac(objects: list[dict], workload: dict, sidecars: dict[str, dict], leases: list[str],
               problems: Problems) -> None:
    """Every controller sidecar in the pod has what it needs from the pod's ServiceAccount."""
    spec = workload["spec"]["template"]["spec"]
    account = spec.get("serviceAccountName", "default")
    namespace = workload["metadata"].get("namespace", "default")
    grants = Grants(objects, account, namespace)
    where = f"ServiceAccount {namespace}/{account}"
    needs = [(name, rule) for name in sorted(sidecars) for rule in SIDECAR_RBAC.get(name, [])]
    if "csi-provisioner" in sidecars and "csi-snapshotter" in sidecars:
        needs += [("csi-provisioner", rule) for rule in PROVISIONER_SNAPSHOT_RBAC]
    for sidecar, (group, resource, verbs) in needs:
        missing = sorted(v for v in verbs if not grants.cluster_wide(group, resource, v))
        problems(not missing, f"{where}: {sidecar} needs {', '.join(missing)} on {resource}"
                 f"{' (' + group + ')' if group else ''} cluster-wide, which no ClusterRoleBinding grants")
    for sidecar in sorted(set(sidecars) & set(SIDECAR_RBAC)):
        problems(grants.in_namespace("", "secrets", "get"),
                 f"{where}: {sidecar} cannot get Secrets in {namespace}, where the Heketi Secret is")
    for lease in leases:
        missing = [v for v in ("get", "update") if not grants.in_namespace("coordination.k8s.io", "leases", v, lease)]
        if not grants.in_namespace("coordination.k8s.io", "leases", "create"):
            missing.append("create")
        problems(not missing, f"{where}: cannot {', '.join(missing)} the Lease {lease} in {namespace} (leader election)")


def check_node(driver: DriverContainer, driver_name: str, problems: Problems) -> None:
    workload = driver.workload
    where = driver.where
    spec = workload["spec"]["template"]["spec"]
    check_placement(driver, problems)
    problems(spec.get("priorityClassName") == "system-node-critical",
             f"{where}: the node plugin needs priorityClassName system-node-critical")
    problems(any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
                 for t in spec.get("tolerations", [])),
             f"{where}: the node plugin must tolerate every taint (operator: Exists without key/effect)")
    problems(driver.container.get("securityContext", {}).get("privileged") is True,
             f"{where}: the node driver container must be privileged")
    problems(driver.env.get("GLUSTERFS_CSI_NODE_ID") == FAKE_FIELDS["spec.nodeName"]
             or driver.args.get("node-id") == FAKE_FIELDS["spec.nodeName"],
             f"{where}: the node ID must come from the downward API field spec.nodeName")
    sidecars = check_sidecars(workload, driver, problems)
    socket_file = socket_path(driver.effective.get("endpoint", ""))
    socket_mount = mount_for(driver.container, socket_file)
    host_socket = None
    if socket_mount:
        host = volume_named(workload, socket_mount[0]["name"]).get("hostPath", {}).get("path")
        expected_dir = f"/var/lib/kubelet/plugins/{driver_name}"
        if problems(host is not None, f"{where}: the node socket must be on a hostPath volume"):
            problems(host.rstrip("/") == expected_dir,
                     f"{where}: the socket directory on the host is {host}, expected {expected_dir}")
            host_socket = os.path.normpath(os.path.join(host, socket_mount[1]))
    registrar = sidecars.get("csi-node-driver-registrar")
    if problems(registrar is not None, f"{where}: the node pod has no csi-node-driver-registrar"):
        path = registrar["args"].get("kubelet-registration-path")
        expected = f"/var/lib/kubelet/plugins/{driver_name}/csi.sock"
        problems(path == expected, f"{registrar['where']}: --kubelet-registration-path is {path}, expected "
                 f"{expected} (the host path of the socket kubelet dials)")
        problems(host_socket is None or path == host_socket,
                 f"{registrar['where']}: --kubelet-registration-path {path} is not where the driver's socket "
                 f"is on the host ({host_socket})")
        registration = registrar["args"].get("plugin-registration-path", SIDECAR_DEFAULTS["plugin-registration-path"])
        found = mount_for(registrar["container"], registration)
        host = volume_named(workload, found[0]["name"]).get("hostPath", {}).get("path") if found else None
        problems(host == "/var/lib/kubelet/plugins_registry" and found[1] == ".",
                 f"{registrar['where']}: {registration} must be kubelet's /var/lib/kubelet/plugins_registry")
    problems("livenessprobe" in sidecars, f"{where}: the node pod has no livenessprobe")
    kubelet = mount_for(driver.container, "/var/lib/kubelet/pods")
    ok = kubelet is not None and kubelet[0].get("mountPropagation") == "Bidirectional" and \
        volume_named(workload, kubelet[0]["name"]).get("hostPath", {}).get("path") == "/var/lib/kubelet" and \
        kubelet[0]["mountPath"].rstrip("/") == "/var/lib/kubelet"
    problems(ok, f"{where}: /var/lib/kubelet must be the host's, mounted at the same path with Bidirectional "
             "propagation (staging and target paths are under it)")
    check_kubelet_dir(driver, problems)
    fuse = mount_for(driver.container, "/dev/fuse")
    problems(fuse is not None and volume_named(workload, fuse[0]["name"]).get("hostPath", {}).get("path")
             == "/dev/fuse", f"{where}: /dev/fuse must be mounted from the host")
    log_dir = driver.effective.get("mount-log-dir", "")
    logs = mount_for(driver.container, log_dir)
    problems(logs is not None and "hostPath" in volume_named(workload, logs[0]["name"]),
             f"{where}: --mount-log-dir {log_dir} must be on a hostPath volume so the client logs outlive "
             "the container")


def check_kubelet_dir(driver: DriverContainer, problems: Problems) -> None:
    """--kubelet-dir, the only directory the node mounts and unmounts under, is where kubelet's
    directory is: the mountPath of the hostPath volume mounted with Bidirectional propagation, whose
    host path is the same (kubelet sends host paths). Elsewhere the node refuses every staging and
    target path kubelet sends, or does not start."""
    kubelet_dir = driver.effective.get("kubelet-dir")
    if kubelet_dir is None:
        return  # a binary without the flag: nothing to agree on
    workload, where = driver.workload, driver.where
    shared = [m for m in driver.container.get("volumeMounts", []) if m.get("mountPropagation") == "Bidirectional"]
    found = mount_for(driver.container, kubelet_dir)
    mount = found[0] if found else None
    source = volume_named(workload, mount["name"]).get("hostPath") if mount else None
    exact = mount is not None and os.path.normpath(mount["mountPath"]) == os.path.normpath(kubelet_dir)
    if not problems(exact and mount in shared and source is not None,
                    f"{where}: --kubelet-dir {kubelet_dir} must be the mountPath of the hostPath volume of kubelet's "
                    "directory, mounted with Bidirectional propagation ("
                    + (", ".join(f"volume {m['name']} at {m['mountPath']}" for m in shared) or "there is none")
                    + "): the node mounts and unmounts only below it; a kubelet with another --root-dir changes "
                    "both"):
        return
    problems(os.path.normpath(source["path"]) == os.path.normpath(kubelet_dir),
             f"{where}: --kubelet-dir {kubelet_dir} is the host's {source['path']} (volume {mount['name']}): kubelet "
             "sends the host's paths, so the host path, the mountPath and --kubelet-dir must be the same directory")


def check_placement(driver: DriverContainer, problems: Problems) -> None:
    """What the node's --mount-placement needs from the pod, and the update strategy it allows."""
    workload = driver.workload
    where = driver.where
    spec = workload["spec"]["template"]["spec"]
    strategy = workload["spec"].get("updateStrategy", {})
    # A binary without the flag runs its clients in its own container: placement none.
    placement = driver.effective.get("mount-placement", "none")
    if not problems(placement in PLACEMENTS,
                    f"{where}: --mount-placement {placement} is none of {', '.join(PLACEMENTS)}"):
        return
    if placement == "none":
        problems(strategy.get("type") == "OnDelete",
                 f"{where}: with --mount-placement=none the FUSE clients run in the node plugin's container and "
                 "die with it, so the DaemonSet must use updateStrategy OnDelete (update drained nodes only; "
                 "docs/upgrade.md)")
        return
    problems(strategy.get("type", "RollingUpdate") == "RollingUpdate",
             f"{where}: the node DaemonSet must use updateStrategy RollingUpdate: with --mount-placement={placement} "
             f"a restart keeps the mounts, and {strategy.get('type')} leaves nodes on the old version")
    surge = str(strategy.get("rollingUpdate", {}).get("maxSurge", 0))
    problems(surge in ("0", "0%"),
             f"{where}: rollingUpdate.maxSurge must be 0, not {surge}: two node plugins on one node would serve one "
             "socket (the second refuses to start) and the same host ports")
    problems(spec.get("hostPID") is True,
             f"{where}: needs hostPID: true with --mount-placement={placement}: a FUSE client in the container's own "
             "PID namespace dies with the container whatever its cgroup (only --mount-placement=none does without)")
    container = driver.container
    if placement in ("auto", "cgroup"):
        root = driver.effective.get("cgroup-root", "")
        found = host_path(workload, container, root)
        problems(found is not None and found[2] == HOST_CGROUP_ROOT,
                 f"{where}: --cgroup-root {root} must be where a hostPath volume of the host's {HOST_CGROUP_ROOT} is "
                 f"mounted (--mount-placement={placement} makes the clients' cgroups there); "
                 + (f"it is the host's {found[2]}" if found else "it is on no hostPath volume"))
        if found:
            problems(not found[0].get("readOnly"),
                     f"{where}: the volumeMount {found[0]['name']} of the host's cgroup tree must be read-write "
                     "(cgroup placement creates a cgroup per volume there)")
    if placement in ("auto", "systemd"):
        socket = driver.effective.get("systemd-socket", "")
        expected = HOST_SYSTEM_BUS if socket.rstrip("/").endswith("dbus/system_bus_socket") else HOST_SYSTEMD_PRIVATE
        found = host_path(workload, container, socket)
        inside = found is not None and found[2] == expected and os.path.normpath(socket) != \
            os.path.normpath(found[0]["mountPath"])
        problems(inside,
                 f"{where}: --systemd-socket {socket} must lie inside a hostPath volume of the host's "
                 f"{os.path.dirname(expected)} (mount that directory at {os.path.dirname(socket)}; a socket mounted "
                 "by itself stays the old one when systemd creates it anew); "
                 + (f"it is the host's {found[2]}" + (" mounted by itself" if found[2] == expected else "")
                    if found else "it is on no hostPath volume"))
        if found and placement == "auto":
            kind = found[1].get("type", "")
            problems(kind in ("", "DirectoryOrCreate"),
                     f"{where}: the hostPath {found[1]['path']} has type {kind}: with --mount-placement=auto it must "
                     "be DirectoryOrCreate, or kubelet does not start the node plugin at all on a node without "
                     "systemd, where auto would choose cgroup placement")


def check_probes(driver: DriverContainer, sidecars_liveness: dict | None, problems: Problems) -> None:
    probe = driver.container.get("livenessProbe", {}).get("httpGet")
    if not problems(probe is not None, f"{driver.where}: needs an httpGet livenessProbe (served by livenessprobe)"):
        return
    port = named_port(driver.container, probe.get("port"))
    if sidecars_liveness is None:
        return
    endpoint = sidecars_liveness["args"].get("http-endpoint", "")
    served = int(endpoint.rsplit(":", 1)[-1]) if endpoint else 9808
    problems(port == served, f"{driver.where}: the livenessProbe asks port {port}, the livenessprobe serves {served}")
    host = endpoint.rsplit(":", 1)[0] if endpoint else ""
    if host in ("127.0.0.1", "localhost"):
        problems(probe.get("host") in ("127.0.0.1", "localhost"),
                 f"{driver.where}: the livenessprobe listens on {host} only; the probe needs host: {host}")


def parse_duration(text: str) -> float | None:
    if text == "0":
        return 0.0  # Go's time.ParseDuration takes a bare 0, and only that, without a unit
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?", text)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
