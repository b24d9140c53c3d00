"""A hostile client against the real binary (issue 14, part 5; the flood is test_flood.py):

- garbage bytes and oversized messages at every method of the Identity, Controller and Node
  services: random bytes, truncated valid messages, wrong and invalid wire types, huge length
  prefixes, a message just over --max-message-size, the empty message;
- unknown enum values (access modes; unknown fields where capability requests could carry RPC
  types), unknown access types and volume content source kinds;
- hostile strings in every string field of every request, nested ones, map keys and values
  included: /proc, /, '..', 'a/../b', 5,000 and 100,000 bytes, NUL, invalid UTF-8, shell
  metacharacters, commas and '=' (mount option smuggling), format strings, forged log lines.

Every call must get a gRPC status within its deadline: no UNKNOWN or INTERNAL, no dropped
connection, no hang; every refusal carries a message; the code is INVALID_ARGUMENT for what cannot
be decoded or is invalid, RESOURCE_EXHAUSTED for a message over the limit, one the CSI spec
documents for the method otherwise. After each batch the driver still answers Probe. After
everything: the driver's mount table is unchanged, nothing outside the test's directory changed, no
payload ran a command (`touch /tmp/pwned-<token>-...` left no file), and no value sent in `secrets`
is in the driver's log (at trace level, which logs every request), whose every line is a log line.

One driver serves the whole module, in all mode (the controller against the Heketi-compatible test
server in mock mode, the node confined to a kubelet directory in the test's directory), inside a
mount namespace of its own (`unshare --mount --propagation private`, which execs it), so a driver
that unmounted /proc anyway would do it there. A foreign tmpfs at the staging path of the node
requests makes every NodeStageVolume and NodePublishVolume that gets past validation end with
FAILED_PRECONDITION before anything is mounted: no hostile value reaches a real mount.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

import heketi_testlib
import hostile_inputs as hostile
from conftest import REPO, Driver, driver_binary, driver_knows
from restart_system import mount_table

C = grpc.StatusCode
PRIVATE_NAMESPACE = ["unshare", "--mount", "--propagation", "private"]
LIMIT = 256 << 10  # --max-message-size: small, so that "just over it" is cheap at every method
CALL_TIMEOUT = 10.0  # seconds; a call the driver does not answer within it hangs
WORKERS = 8  # calls in flight at once within a batch
GIB = 1 << 30
TOKEN = secrets.token_hex(5)
SECRET_MARK = f"hush-{TOKEN}-"  # in every value sent in `secrets`: must never reach the log

# Methods the driver does not serve (it does not advertise them): UNIMPLEMENTED, before decoding.
UNIMPLEMENTED = {
    "ControllerPublishVolume", "ControllerUnpublishVolume", "ControllerModifyVolume", "NodeExpandVolume",
}

# The codes the CSI spec documents for each method (its error tables and the general ones it
# names for them), plus INVALID_ARGUMENT, which every method answers for a request it cannot
# decode. UNAUTHENTICATED: Heketi refused the key sent in `secrets`.
ALLOWED = {
    "GetPluginInfo": {C.OK}, "GetPluginCapabilities": {C.OK}, "Probe": {C.OK, C.FAILED_PRECONDITION},
    "CreateVolume": {C.OK, C.ALREADY_EXISTS, C.NOT_FOUND, C.OUT_OF_RANGE, C.RESOURCE_EXHAUSTED, C.ABORTED,
                     C.UNAUTHENTICATED},
    "DeleteVolume": {C.OK, C.FAILED_PRECONDITION, C.ABORTED, C.UNAUTHENTICATED},
    "ValidateVolumeCapabilities": {C.OK, C.NOT_FOUND, C.UNAUTHENTICATED},
    "ListVolumes": {C.OK, C.ABORTED},
    "GetCapacity": {C.OK},
    "ControllerGetCapabilities": {C.OK},
    "ControllerExpandVolume": {C.OK, C.NOT_FOUND, C.OUT_OF_RANGE, C.RESOURCE_EXHAUSTED, C.FAILED_PRECONDITION,
                               C.ABORTED, C.UNAUTHENTICATED},
    # A volume ID names its Heketi; one other than --heketi-url gets no key (the call has no secrets).
    "ControllerGetVolume": {C.OK, C.NOT_FOUND, C.UNAUTHENTICATED},
    # NOT_FOUND: the source volume does not exist (not in the spec's table, but what a CO expects
    # and what the CSI reference driver answers).
    "CreateSnapshot": {C.OK, C.ALREADY_EXISTS, C.NOT_FOUND, C.RESOURCE_EXHAUSTED, C.ABORTED, C.UNAUTHENTICATED},
    "DeleteSnapshot": {C.OK, C.FAILED_PRECONDITION, C.ABORTED, C.UNAUTHENTICATED},
    "ListSnapshots": {C.OK, C.ABORTED, C.UNAUTHENTICATED},
    "GetSnapshot": {C.OK, C.NOT_FOUND, C.UNAUTHENTICATED},
    "NodeStageVolume": {C.OK, C.NOT_FOUND, C.ALREADY_EXISTS, C.FAILED_PRECONDITION, C.ABORTED},
    "NodeUnstageVolume": {C.OK, C.NOT_FOUND, C.FAILED_PRECONDITION, C.ABORTED},
    "NodePublishVolume": {C.OK, C.NOT_FOUND, C.ALREADY_EXISTS, C.FAILED_PRECONDITION, C.ABORTED},
    "NodeUnpublishVolume": {C.OK, C.NOT_FOUND, C.FAILED_PRECONDITION, C.ABORTED},
    "NodeGetVolumeStats": {C.OK, C.NOT_FOUND},
    "NodeGetCapabilities": {C.OK}, "NodeGetInfo": {C.OK},
}
for _method in ALLOWED:
    ALLOWED[_method] |= {C.INVALID_ARGUMENT}
for _method in UNIMPLEMENTED:
    ALLOWED[_method] = {C.UNIMPLEMENTED}

# What no hostile request may get: a crash (UNKNOWN, or the connection dropped: UNAVAILABLE), a bug
# (INTERNAL), a hang (DEADLINE_EXCEEDED: the client's deadline), a call the driver gave up on.
NEVER = {C.UNKNOWN, C.INTERNAL, C.UNAVAILABLE, C.DEADLINE_EXCEEDED, C.CANCELLED, C.DATA_LOSS}

# Keys whose values a map slot gets, besides a hostile key: the ones the driver reads.
KNOWN_KEYS = {
    "parameters": ["csi.storage.k8s.io/pvc/name", "resturl", "volumetype"],
    "secrets": ["key", "user"],
    "volume_context": ["glusterVolume", "glusterHosts", "gid"],
}
PATH_FIELDS = {"staging_target_path", "target_path", "volume_path"}
VOLUME_ID_FIELDS = {"volume_id", "source_volume_id", "snapshot_id"}

# The longest status message accepted. gRPC sends it in a trailer: gRPC-core clients refuse trailers
# over 16 KiB (the call then ends RESOURCE_EXHAUSTED on the client, and the driver's answer is lost)
# and may refuse those over 8 KiB; a message quoting a whole hostile field does not fit.
MAX_MESSAGE_BYTES = 4096

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|notice|warning|error|critical) ")


@dataclass
class Answer:
    code: grpc.StatusCode
    message: str
    response: bytes | None


@dataclass
class Case:
    method: str
    what: str
    payload: bytes
    must: set | None = None  # the only codes acceptable, when the input decides it
    check: object = None  # more checks of an answer: callable(Answer) -> problem or None


class Rig:
    """The driver, its Heketi, the test's directory and what the checks compare with."""

    def __init__(self, csi, root: Path, driver: Driver, heketi, kubelet: Path):
        self.csi, self.pb = csi, csi.pb
        self.root, self.driver, self.heketi, self.kubelet = root, driver, heketi, kubelet
        self.channel = driver.channel()
        self.methods = {}  # name -> (path, request class)
        for service in ("Identity", "Controller", "Node"):
            for method in csi.pb.DESCRIPTOR.services_by_name[service].methods:
                self.methods[method.name] = (f"/csi.v1.{service}/{method.name}",
                                             getattr(csi.pb, method.input_type.name))
        self.calls = {}  # category -> number of calls made
        self.log_offset = 0
        self.baseline()

    # --- calls

    def call(self, method: str, payload: bytes, timeout: float = CALL_TIMEOUT) -> Answer:
        path = self.methods[method][0]
        try:
            response, call = self.channel.unary_unary(path).with_call(payload, timeout=timeout)
            return Answer(C.OK, call.details() or "", response)
        except grpc.RpcError as error:
            return Answer(error.code(), error.details() or "", None)

    def run(self, category: str, cases: list[Case]) -> list[str]:
        """Sends `cases` (WORKERS at a time) and judges each answer; the problems found."""
        with ThreadPoolExecutor(WORKERS) as pool:
            answers = list(pool.map(lambda case: self.call(case.method, case.payload), cases))
        self.calls[category] = self.calls.get(category, 0) + len(cases)
        return [problem for case, answer in zip(cases, answers) if (problem := judge(case, answer))]

    def probe(self) -> str | None:
        if self.driver.process.poll() is not None:
            return f"the driver exited with {self.driver.process.returncode}"
        try:
            ready = self.csi.grpc.IdentityStub(self.channel).Probe(self.pb.ProbeRequest(), timeout=10).ready.value
        except grpc.RpcError as error:
            return f"Probe failed: {error.code().name}: {error.details()}"
        return None if ready else "Probe answered not ready"

    # --- what must not change

    def driver_mounts(self) -> str:
        return Path(f"/proc/{self.driver.process.pid}/mountinfo").read_text()

    def host_mounts(self) -> list[dict]:
        """This namespace's mounts at /, /proc, /sys, /dev, /tmp and under the test's directory."""
        return [m for m in mount_table() if m["point"] in ("/", "/proc", "/sys", "/dev", "/tmp")
                or m["point"].startswith(str(self.root))]

    def outside_state(self) -> dict:
        """Entries of directories a hostile path could reach (names, types, modes; sizes and mtimes
        of files), and everything below the test's own 'outside' directory."""
        state = {}
        for directory in ("/", "/etc", "/usr/sbin", "/usr/bin", "/var/lib"):
            for entry in os.scandir(directory):
                info = entry.stat(follow_symlinks=False)
                detail = (info.st_size, info.st_mtime_ns) if entry.is_file(follow_symlinks=False) else ()
                state[entry.path] = (info.st_mode, *detail)
        for entry in sorted((self.root / "outside").rglob("*")):
            info = entry.lstat()
            digest = hashlib.sha256(entry.read_bytes()).hexdigest() if entry.is_file() else ""
            state[str(entry)] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
        for name in ("kubelet/pods/sentinel/keep.txt", "kubelet/plugins/foreign/globalmount/data.txt"):
            path = self.root / name
            state[str(path)] = path.read_text() if path.exists() else None
        return state

    def own_tree(self) -> list[str]:
        """Everything in the kubelet directory and the client log directory: no hostile request
        gets as far as making a directory to mount on, or a client log."""
        return sorted(str(p) for d in (self.kubelet, self.root / "logs") for p in d.rglob("*"))

    def baseline(self):
        self.tree_before = self.own_tree()
        self.mounts_before = self.driver_mounts()
        self.host_before = self.host_mounts()
        self.outside_before = self.outside_state()

    def pwned(self) -> list[str]:
        """Files a payload's command would have made."""
        places = ["/tmp", "/", str(REPO), str(self.root / "cwd"), f"/proc/{self.driver.process.pid}/cwd"]
        return sorted({str(p) for place in places for p in Path(place).glob(f"pwned-{TOKEN}*")})

    def log_problems(self) -> list[str]:
        """Secrets, and lines that are not log lines, in the part of the log not checked yet."""
        with open(self.driver.log_path, "rb") as log:
            log.seek(max(0, self.log_offset - 200))
            text = log.read().decode(errors="replace")
            self.log_offset = log.tell()
        problems = {}
        for secret in (SECRET_MARK, heketi_testlib.ADMIN_KEY):
            for found in re.finditer(re.escape(secret), text):
                context = text[max(0, found.start() - 120):found.end() + 40]
                # One problem per kind of line: the text before the secret, without request ids.
                line_start = text.rfind("\n", 0, found.start()) + 1
                kind = re.sub(r"rpc\.request_id=\S+|\d", "", text[line_start:found.start()][-80:])
                problems.setdefault(kind, f"a secret value is in the driver log: ...{context}")
        for line in text.split("\n")[1:]:  # the first may start before the offset
            if line and not LOG_LINE.match(line):
                problems["not a log line"] = f"a line of the driver log is not a log line: {line[:200]!r}"
                break
        return list(problems.values())

    def unharmed_problems(self) -> list[str]:
        """What the hostile calls so far changed that they must not have."""
        problems = []
        if problem := self.probe():
            problems.append(problem)
        else:
            if (mounts := self.driver_mounts()) != self.mounts_before:
                before, after = set(self.mounts_before.splitlines()), set(mounts.splitlines())
                problems.append(f"the driver's mount table changed: gone {sorted(before - after)}, "
                                f"new {sorted(after - before)}")
            if self.host_mounts() != self.host_before:
                problems.append("this process's mount table changed at /, /proc, /sys, /dev, /tmp or the test dir")
        after = self.outside_state()
        changed = sorted(k for k in after.keys() | self.outside_before.keys()
                         if after.get(k) != self.outside_before.get(k))
        if changed:
            problems.append(f"changed outside the kubelet directory: {changed[:20]}")
        tree = self.own_tree()
        if tree != self.tree_before:
            made, gone = sorted(set(tree) - set(self.tree_before)), sorted(set(self.tree_before) - set(tree))
            problems.append(f"the kubelet or log directory changed: made {made[:10]}, removed {gone[:10]}")
        if found := self.pwned():
            problems.append(f"a payload ran a command: {found}")
        return problems + self.log_problems()

    def settle(self, problems: list[str]):
        """Fails the test for `problems` and for any harm done."""
        problems = problems + self.unharmed_problems()
        assert not problems, problems_report(problems)


def judge(case: Case, answer: Answer) -> str | None:
    where = f"{case.method} with {case.what}"
    shown = f"{answer.code.name}: {answer.message[:300]!r}"
    if answer.code in NEVER:
        return f"{where}: {shown}"
    if answer.code != C.OK and not answer.message.strip():
        return f"{where}: {answer.code.name} without a message"
    if "received metadata size exceeds" in answer.message:
        return f"{where}: the status message is over gRPC's metadata limit, the client never got the answer: {shown}"
    if len(answer.message.encode()) > MAX_MESSAGE_BYTES:
        return f"{where}: a status message of {len(answer.message.encode())} bytes (at most {MAX_MESSAGE_BYTES}): {shown}"
    expected = case.must if case.must is not None else ALLOWED[case.method]
    if case.method in UNIMPLEMENTED:
        expected = {C.UNIMPLEMENTED, C.RESOURCE_EXHAUSTED} if C.RESOURCE_EXHAUSTED in expected else {C.UNIMPLEMENTED}
    if answer.code not in expected:
        return f"{where}: {shown}, expected {sorted(c.name for c in expected)}"
    if case.check is not None:
        if problem := case.check(answer):
            return f"{where}: {problem}"
    return None


def problems_report(problems: list[str], limit: int = 40) -> str:
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} problems:\n" + "\n".join(problems[:limit]) + more


# --- The driver, its Heketi and the test's directory.

def require_an_isolated_driver():
    if os.geteuid() != 0:
        pytest.skip("needs root: the driver runs in a mount namespace of its own, the test mounts a tmpfs")
    if not driver_knows("--kubelet-dir"):
        pytest.skip(f"{driver_binary()} has no --kubelet-dir: hostile paths go only to a confined node")
    if shutil.which("unshare") is None or subprocess.run([*PRIVATE_NAMESPACE, "--", "true"], capture_output=True,
                                                         timeout=30).returncode != 0:
        pytest.skip("unshare --mount does not work here; hostile requests go only to a driver in a private "
                    "mount namespace")


def in_directory(directory: Path) -> list[str]:
    """A prefix that execs the command after it in `directory` (the process stays the same), so
    that a payload touching a relative path would do it there. The binary's path may be relative."""
    return ["sh", "-c", f'binary=$(realpath "$0") && cd {shlex.quote(str(directory))} && exec "$binary" "$@"']


@pytest.fixture(scope="module")
def rig(csi):
    require_an_isolated_driver()
    root = Path(tempfile.mkdtemp(prefix="gcsi-hostile-", dir="/tmp"))
    kubelet = root / "kubelet"
    foreign = kubelet / "plugins/foreign/globalmount"
    for directory in (foreign, kubelet / "pods/sentinel", root / "outside/empty", root / "cwd", root / "logs"):
        directory.mkdir(parents=True)
    (kubelet / "pods/sentinel/keep.txt").write_text("kept\n")
    (root / "outside/precious.txt").write_text("outside the kubelet directory\n")
    heketi = driver = None
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", f"gcsi-hostile-{TOKEN}", str(foreign)], check=True,
                       timeout=30)
        (foreign / "data.txt").write_text("foreign\n")
        heketi = heketi_testlib.HeketiServer(root).start()
        heketi.url = f"http://127.0.0.1:{heketi.port}"
        key_file = root / "heketi-key"
        key_file.write_text(heketi_testlib.ADMIN_KEY + "\n")
        driver = Driver(root / "run/csi.sock", root / "driver.log", [
            "--mode", "all", "--node-id", "hostile-node", "--heketi-url", heketi.url, "--heketi-key-file",
            str(key_file), "--log-level", "trace", "--max-message-size", str(LIMIT), "--kubelet-dir", str(kubelet),
            "--mount-log-dir", str(root / "logs"), "--mount-placement", "none", "--shutdown-grace", "5",
        ], prefix=[*PRIVATE_NAMESPACE, "--", *in_directory(root / "cwd")]).wait_ready()
        # Never send a hostile request to a driver in this process's own mount namespace.
        assert os.readlink(f"/proc/{driver.process.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        rig = Rig(csi, root, driver, heketi, kubelet)
        rig.bases = base_requests(rig)
        yield rig
        try:
            code = driver.terminate(timeout=40)
        except subprocess.TimeoutExpired:
            pytest.fail("the driver did not exit within 40 s of SIGTERM: calls still running past --shutdown-grace")
        if code != 0:
            tail = "\n".join(line for line in driver.log_path.read_text(errors="replace").split("\n")
                             if not re.search(r"Z (trace|debug) ", line))[-3000:]
            pytest.fail(f"the driver exited with {code} after SIGTERM (not every call was answered):\n{tail}")
    finally:
        if driver is not None:
            driver.close()
        if heketi is not None:
            try:
                heketi.test_api("POST", "/_test/reset", {"volumes": True})
            except OSError:
                pass
            heketi.stop()
        subprocess.run(["umount", "-l", str(foreign)], capture_output=True, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def capability(pb, mode=None):
    access = pb.VolumeCapability.AccessMode
    return pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(),
                               access_mode=access(mode=access.MULTI_NODE_MULTI_WRITER if mode is None else mode))


def base_requests(rig: Rig) -> dict:
    """A well-formed request for every method (BASE_ANSWERS: what it gets): each hostile variant
    differs from one of them in one place, so what the driver refuses is that place."""
    pb = rig.pb
    keyed = {"key": heketi_testlib.ADMIN_KEY}
    created = rig.call("CreateVolume", pb.CreateVolumeRequest(
        name="pvc-hostile-existing", capacity_range=pb.CapacityRange(required_bytes=GIB),
        volume_capabilities=[capability(pb)], secrets=keyed).SerializeToString())
    assert created.code == C.OK, created.message
    existing = pb.CreateVolumeResponse.FromString(created.response).volume.volume_id
    snapshotted = rig.call("CreateSnapshot", pb.CreateSnapshotRequest(
        name="hostile-existing-snapshot", source_volume_id=existing).SerializeToString())
    assert snapshotted.code == C.OK, snapshotted.message
    snapshot = pb.CreateSnapshotResponse.FromString(snapshotted.response).snapshot.snapshot_id
    missing = f"v1:{'0' * 32}:{rig.heketi.url}"
    staging = str(rig.kubelet / "plugins/foreign/globalmount")  # a tmpfs: FAILED_PRECONDITION, never mounted
    context = {"glusterHosts": "127.0.0.1", "glusterVolume": "hostile"}
    return {
        "GetPluginInfo": pb.GetPluginInfoRequest(),
        "GetPluginCapabilities": pb.GetPluginCapabilitiesRequest(),
        "Probe": pb.ProbeRequest(),
        "CreateVolume": pb.CreateVolumeRequest(
            name="pvc-hostile", capacity_range=pb.CapacityRange(required_bytes=GIB),
            volume_capabilities=[capability(pb)], secrets=keyed),
        "DeleteVolume": pb.DeleteVolumeRequest(volume_id=missing, secrets=keyed),
        "ControllerPublishVolume": pb.ControllerPublishVolumeRequest(
            volume_id=existing, node_id="hostile-node", volume_capability=capability(pb), secrets=keyed),
        "ControllerUnpublishVolume": pb.ControllerUnpublishVolumeRequest(volume_id=existing, node_id="hostile-node"),
        "ValidateVolumeCapabilities": pb.ValidateVolumeCapabilitiesRequest(
            volume_id=existing, volume_capabilities=[capability(pb)], secrets=keyed),
        "ListVolumes": pb.ListVolumesRequest(max_entries=2),
        "GetCapacity": pb.GetCapacityRequest(volume_capabilities=[capability(pb)]),
        "ControllerGetCapabilities": pb.ControllerGetCapabilitiesRequest(),
        "CreateSnapshot": pb.CreateSnapshotRequest(source_volume_id=existing, name="hostile-snapshot"),
        # A snapshot ID of this driver's shape that names no clone: deleted already, OK.
        "DeleteSnapshot": pb.DeleteSnapshotRequest(snapshot_id=f"s1:{'0' * 32}:{rig.heketi.url}", secrets=keyed),
        "ListSnapshots": pb.ListSnapshotsRequest(max_entries=2),
        "GetSnapshot": pb.GetSnapshotRequest(snapshot_id=snapshot, secrets=keyed),
        "ControllerExpandVolume": pb.ControllerExpandVolumeRequest(
            volume_id=existing, capacity_range=pb.CapacityRange(required_bytes=GIB),
            volume_capability=capability(pb), secrets=keyed),
        "ControllerGetVolume": pb.ControllerGetVolumeRequest(volume_id=existing),
        "ControllerModifyVolume": pb.ControllerModifyVolumeRequest(volume_id=existing),
        "NodeStageVolume": pb.NodeStageVolumeRequest(
            volume_id="hostile-volume", staging_target_path=staging, volume_capability=capability(pb),
            volume_context=context),
        "NodeUnstageVolume": pb.NodeUnstageVolumeRequest(
            volume_id="hostile-volume", staging_target_path=str(rig.kubelet / "plugins/never/globalmount")),
        "NodePublishVolume": pb.NodePublishVolumeRequest(
            volume_id="hostile-volume", staging_target_path=staging,
            target_path=str(rig.kubelet / "pods/hostile/mount"), volume_capability=capability(pb),
            volume_context=context),
        "NodeUnpublishVolume": pb.NodeUnpublishVolumeRequest(
            volume_id="hostile-volume", target_path=str(rig.kubelet / "pods/never/mount")),
        "NodeGetVolumeStats": pb.NodeGetVolumeStatsRequest(
            volume_id="hostile-volume", volume_path=str(rig.kubelet / "pods/never/mount")),
        "NodeExpandVolume": pb.NodeExpandVolumeRequest(
            volume_id="hostile-volume", volume_path=str(rig.kubelet / "pods/never/mount")),
        "NodeGetCapabilities": pb.NodeGetCapabilitiesRequest(),
        "NodeGetInfo": pb.NodeGetInfoRequest(),
    }


# What each base request gets (FAILED_PRECONDITION: the foreign tmpfs at the staging path).
BASE_ANSWERS = {
    "NodeStageVolume": C.FAILED_PRECONDITION, "NodePublishVolume": C.FAILED_PRECONDITION,
    "NodeGetVolumeStats": C.NOT_FOUND,
}


def test_the_base_requests_get_their_usual_answers(rig):
    """The hostile variants below change one thing each in these requests."""
    problems = []
    for method, request in rig.bases.items():
        answer = rig.call(method, request.SerializeToString())
        expected = C.UNIMPLEMENTED if method in UNIMPLEMENTED else BASE_ANSWERS.get(method, C.OK)
        if answer.code != expected:
            problems.append(f"{method}: {answer.code.name}: {answer.message}, expected {expected.name}")
    rig.settle(problems)


# --- Garbage bytes and oversized messages.

def test_garbage_bytes_and_oversized_messages_at_every_method(rig):
    problems = []
    for method, (_, request_class) in rig.methods.items():
        cases = []
        for payload in hostile.wire_payloads(request_class, seed=0):
            malformed = payload.malformed
            if malformed is None:
                malformed = not hostile.decodes(request_class, payload.data)
            cases.append(Case(method, payload.name, payload.data, {C.INVALID_ARGUMENT} if malformed else None))
        cases.append(Case(method, f"a message of exactly --max-message-size ({LIMIT} B)",
                          hostile.padded_to(LIMIT)))
        cases.append(Case(method, f"a message 1 B over --max-message-size ({LIMIT} B)",
                          hostile.padded_to(LIMIT + 1), {C.RESOURCE_EXHAUSTED}))
        cases.append(Case(method, "a valid request padded 1 B over --max-message-size",
                          hostile.padded_to(LIMIT + 1, rig.bases[method].SerializeToString()), {C.RESOURCE_EXHAUSTED}))
        problems += rig.run("garbage bytes and oversized messages", cases)
        if problem := rig.probe():
            pytest.fail(f"after the garbage sent to {method}: {problem}\n{problems_report(problems)}")
    rig.settle(problems)


# --- Unknown enum values, unknown access types and content source kinds.

UNKNOWN_MODES = {"8 (the next unused)": 8, "99": 99, "2^31-1": 2**31 - 1, "-1": -1, "-2^31": -(2**31)}
CAPABILITY_FIELDS = {  # method -> the field holding its volume capability (or capabilities)
    "CreateVolume": "volume_capabilities", "ValidateVolumeCapabilities": "volume_capabilities",
    "GetCapacity": "volume_capabilities", "ControllerExpandVolume": "volume_capability",
    "NodeStageVolume": "volume_capability", "NodePublishVolume": "volume_capability",
    "ControllerPublishVolume": "volume_capability", "NodeExpandVolume": "volume_capability",
}


def not_confirmed(rig):
    def check(answer: Answer):
        if answer.code == C.OK and rig.pb.ValidateVolumeCapabilitiesResponse.FromString(answer.response).HasField(
                "confirmed"):
            return "confirmed a capability the driver cannot know"
        return None
    return check


def no_capacity(rig):
    def check(answer: Answer):
        if answer.code == C.OK and rig.pb.GetCapacityResponse.FromString(answer.response).available_capacity != 0:
            return "reported capacity for a capability the driver cannot know"
        return None
    return check


def refused_capability(rig, method: str, what: str, payload: bytes) -> Case:
    """A request with a capability the driver cannot honour: INVALID_ARGUMENT, except where the spec
    answers OK without confirming (ValidateVolumeCapabilities) or with no capacity (GetCapacity)."""
    if method == "ValidateVolumeCapabilities":
        return Case(method, what, payload, {C.OK, C.INVALID_ARGUMENT}, not_confirmed(rig))
    if method == "GetCapacity":
        return Case(method, what, payload, {C.OK, C.INVALID_ARGUMENT}, no_capacity(rig))
    return Case(method, what, payload, {C.INVALID_ARGUMENT})


def test_unknown_enum_values_access_types_and_content_source_kinds(rig):
    pb = rig.pb
    cases = []
    for method, field in CAPABILITY_FIELDS.items():
        base = rig.bases[method]
        number = base.DESCRIPTOR.fields_by_name[field].number
        for name, mode in UNKNOWN_MODES.items():
            request = type(base)()
            request.CopyFrom(base)
            request.ClearField(field)
            unknown = capability(pb, mode)
            if field == "volume_capabilities":
                request.volume_capabilities.extend([capability(pb), unknown])
            else:
                getattr(request, field).CopyFrom(unknown)
            cases.append(refused_capability(rig, method, f"access mode {name}", request.SerializeToString()))
        # A capability whose access_type is a oneof member this proto does not know (field 3), or
        # that has no access type and no access mode at all.
        request = type(base)()
        request.CopyFrom(base)
        request.ClearField(field)
        mode = pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER)
        unknown_type = hostile.length_delimited(3, b"\x0a\x01x") + hostile.length_delimited(
            2, mode.SerializeToString())
        for what, capability_bytes in (("an unknown access_type (field 3)", unknown_type),
                                       ("an empty capability", b"")):
            payload = request.SerializeToString() + hostile.length_delimited(number, capability_bytes)
            cases.append(refused_capability(rig, method, what, payload))
    # VolumeContentSource kinds: an unknown one (field 3) and none are invalid; a snapshot source
    # that names no snapshot of this driver (a volume ID included) is not found.
    base = rig.bases["CreateVolume"]
    source_number = base.DESCRIPTOR.fields_by_name["volume_content_source"].number
    volume_id = rig.bases["ControllerGetVolume"].volume_id
    for what, source, code in (
            ("an unknown volume_content_source kind (field 3)",
             hostile.length_delimited(3, hostile.length_delimited(1, b"src")), C.INVALID_ARGUMENT),
            ("a volume_content_source of no kind", b"", C.INVALID_ARGUMENT),
            ("a snapshot volume_content_source naming no snapshot", pb.VolumeContentSource(
                snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id="snap")).SerializeToString(),
             C.NOT_FOUND),
            ("a snapshot volume_content_source naming a volume", pb.VolumeContentSource(
                snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=volume_id)).SerializeToString(),
             C.NOT_FOUND)):
        payload = base.SerializeToString() + hostile.length_delimited(source_number, source)
        cases.append(Case("CreateVolume", what, payload, {code}))
    # RPC and capability types appear only in responses; a request can only carry them as fields
    # its message does not have: ignored, and the answer is the usual one.
    for method in ("GetPluginCapabilities", "ControllerGetCapabilities", "NodeGetCapabilities"):
        usual = rig.call(method, b"").response
        for value in (999, 2**31 - 1, -1):
            payload = hostile.tag(1, hostile.VARINT) + hostile.varint(value) + hostile.length_delimited(
                1000, hostile.tag(1, hostile.VARINT) + hostile.varint(value))
            cases.append(Case(method, f"unknown fields carrying RPC type {value}", payload, {C.OK},
                              lambda answer, usual=usual: None if answer.response == usual
                              else "answered other capabilities than for an empty request"))
    problems = rig.run("unknown enum values and kinds", cases)
    rig.settle(problems)


# --- Hostile strings in every string field.

def hostile_cases(rig: Rig, method: str) -> list[Case]:
    base = rig.bases[method]
    strings = hostile.hostile_strings(TOKEN)
    paths = hostile.hostile_paths(str(rig.kubelet), TOKEN)
    cases = []
    for slot in hostile.string_slots(base.DESCRIPTOR):
        kind = slot.steps[-1][1]
        values = dict(strings)
        if kind == hostile.SINGLE and slot.field in PATH_FIELDS and len(slot.steps) == 1:
            values.update(paths)
        if kind == hostile.SINGLE and slot.field in VOLUME_ID_FIELDS and method not in UNIMPLEMENTED and \
                not method.startswith("Node"):
            # Snapshot IDs (s1:) have the volume ID's shape; each kind of ID goes in each ID field.
            for version in ("v1", "s1"):
                values.update({
                    f"a {version} ID with $() as Heketi ID":
                        f"{version}:$(touch /tmp/pwned-{TOKEN}-id):{rig.heketi.url}",
                    f"a {version} ID with a file:// URL": f"{version}:{'0' * 32}:file:///etc/passwd",
                    f"a {version} ID with a path in the URL": f"{version}:{'0' * 32}:{rig.heketi.url}/../../etc",
                    f"a {version} ID with a newline in the URL":
                        f"{version}:{'0' * 32}:{rig.heketi.url}\r\nX-Injected: 1",
                })
        secret = slot.steps[0][0] == "secrets"
        keys = KNOWN_KEYS.get(slot.field, ["hostile-test-key"]) if kind == hostile.VALUE else [None]
        for name, value in values.items():
            for key in keys:
                sent = SECRET_MARK + value if secret and kind == hostile.VALUE and isinstance(value, str) else value
                if secret and kind == hostile.VALUE and isinstance(value, hostile.Raw):
                    sent = SECRET_MARK + hostile.PLACEHOLDER
                text, raw = hostile.substitute(sent)
                request = hostile.with_value(base, slot, text, key,
                                             key_value=SECRET_MARK + "for-a-hostile-key" if secret else "v")
                where = f"{slot}{f'[{key}]' if key else ''} = {name}"
                cases.append(Case(method, where, hostile.encode(request, raw), must_for(method, slot, name, raw)))
    if method == "CreateVolume":
        # With volumenameprefix the Heketi name is made of the PVC's namespace and name instead.
        prefixed = type(base)()
        prefixed.CopyFrom(base)
        prefixed.parameters.update({"volumenameprefix": "hostile", "csi.storage.k8s.io/pvc/namespace": "ns",
                                    "csi.storage.k8s.io/pvc/name": "claim"})
        for key in ("csi.storage.k8s.io/pvc/name", "csi.storage.k8s.io/pvc/namespace"):
            for name, value in strings.items():
                text, raw = hostile.substitute(value)
                request = type(base)()
                request.CopyFrom(prefixed)
                request.parameters[key] = text
                cases.append(Case(method, f"volumenameprefix and parameters{{value}}[{key}] = {name}",
                                  hostile.encode(request, raw), {C.INVALID_ARGUMENT} if raw is not None else None))
    return cases


# Paths under the kubelet directory that are clean and confined: a node method may accept them.
ACCEPTABLE_PATHS = {"under the kubelet dir, with $()", "under the kubelet dir, with ;",
                    "under the kubelet dir, with a comma"}


def must_for(method: str, slot, name: str, raw) -> set | None:
    """The codes a hostile value decides by itself, where it does."""
    if method in UNIMPLEMENTED:
        return None
    if raw is not None:
        return {C.INVALID_ARGUMENT}  # invalid UTF-8: the request cannot be decoded
    field = slot.field
    if len(slot.steps) == 1 and field in PATH_FIELDS and name != "empty" and name not in ACCEPTABLE_PATHS:
        if method == "NodeGetVolumeStats":
            return {C.INVALID_ARGUMENT, C.NOT_FOUND}  # no volume of this driver is there
        return {C.INVALID_ARGUMENT}
    if field == "mount_flags" and method in ("NodeStageVolume", "NodePublishVolume"):
        return {C.INVALID_ARGUMENT}  # none of them is an allowed mount option
    if field == "fs_type" and name != "empty" and method in ("CreateVolume", "NodeStageVolume", "NodePublishVolume",
                                                              "ControllerExpandVolume"):
        return {C.INVALID_ARGUMENT}
    if name == "empty" and len(slot.steps) == 1 and field in ("volume_id", "name", "target_path") and \
            method not in ("DeleteVolume",):
        return {C.INVALID_ARGUMENT}
    if name == "empty" and len(slot.steps) == 1 and field in ("snapshot_id", "source_volume_id") and \
            method != "ListSnapshots":  # for ListSnapshots an empty filter is no filter
        return {C.INVALID_ARGUMENT}
    return None


@pytest.mark.parametrize("service", ["Controller", "Node"])
def test_hostile_strings_in_every_string_field(rig, service):
    problems = []
    for method in rig.csi.pb.DESCRIPTOR.services_by_name[service].methods_by_name:
        cases = hostile_cases(rig, method)
        if not cases:
            continue
        problems += rig.run(f"hostile strings ({service})", cases)
        if problem := rig.probe():
            pytest.fail(f"after the hostile strings sent to {method}: {problem}\n{problems_report(problems)}")
    rig.settle(problems)


def test_after_all_of_it_the_driver_is_unharmed_and_nothing_outside_changed(rig):
    print(f"\nhostile-client calls: {rig.calls}, {sum(rig.calls.values())} in all")
    # The test's own things in the kubelet directory are still there; nothing was mounted.
    assert (rig.kubelet / "pods/sentinel/keep.txt").read_text() == "kept\n"
    assert (rig.kubelet / "plugins/foreign/globalmount/data.txt").read_text() == "foreign\n"
    assert not [m for m in mount_table(f"/proc/{rig.driver.process.pid}/mountinfo") if "fuse" in m["fstype"]]
    rig.settle([])
