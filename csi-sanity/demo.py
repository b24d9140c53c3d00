#!/usr/bin/env python3
"""The client side of scripts/demo: a storage admin's day with glusterfs-csi, told step by step.

It plays the parts Kubernetes plays (external-provisioner, kubelet, external-resizer) against a
running driver, over the driver's Unix socket with a Python gRPC client whose stubs are generated
from proto/csi.proto at run time:

  provision a 10 GiB replicate:3 volume with the in-tree StorageClass parameters → stage it and
  publish it into a pod's directory → write and read a file, and find it on all three bricks →
  publish it again read-only into a second pod → expand it to 12 GiB → clean everything up.

    demo.py --socket PATH --heketi-url URL --key-file FILE --work DIR [--kubelet-dir DIR]

scripts/demo starts glusterd, the Heketi-compatible test server and the driver, then runs this.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import textwrap
import time
import uuid
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import csitools  # noqa: E402

GIB = 1 << 30
TIMEOUT = 180


class StepFailed(Exception):
    pass


class Demo:
    def __init__(self, args):
        self.args = args
        self.pb, rpc = csitools.stubs()
        self.channel = csitools.channel(args.socket)
        self.identity = rpc.IdentityStub(self.channel)
        self.controller = rpc.ControllerStub(self.channel)
        self.node = rpc.NodeStub(self.channel)
        self.key = Path(args.key_file).read_text().strip()
        self.heketi = csitools.Heketi(args.heketi_url, self.key)
        self.work = Path(args.work)
        # Where kubelet would stage and publish: the driver's --kubelet-dir.
        self.kubelet = Path(args.kubelet_dir) if args.kubelet_dir else self.work / "kubelet"
        self.undo: list[tuple[str, object]] = []
        self.step_number = 0
        self.started = time.monotonic()

    # ---------------------------------------------------------------------------- presentation

    def step(self, title: str):
        self.step_number += 1
        print(f"\n[{self.step_number}/7] {title}", flush=True)

    @staticmethod
    def say(text: str = "", indent: int = 6):
        for line in textwrap.dedent(text).strip("\n").splitlines() or [""]:
            print(" " * indent + line, flush=True)

    def ok(self, text: str):
        print(f"    ✔ {text}", flush=True)

    def call(self, what: str, method, request, hint: str):
        """One CSI call, shown as the CO would make it; a failure stops the walkthrough with a hint."""
        print(f"    → {what}", flush=True)
        started = time.monotonic()
        try:
            response = method(request, timeout=TIMEOUT)
        except grpc.RpcError as error:
            message = f"{what} failed: {error.code().name}: {error.details()}"
            raise StepFailed(f"{message}\n      What to do: {hint}") from None
        print(f"      answered in {time.monotonic() - started:.1f} s", flush=True)
        return response

    # ------------------------------------------------------------------------------- the day

    def run(self) -> int:
        try:
            self.introduce()
            volume = self.provision()
            staging = self.stage(volume)
            target = self.publish(volume, staging)
            self.write_and_read(volume, target)
            self.publish_read_only(volume, staging, target)
            self.expand(volume, target)
            self.clean_up(volume)
        except StepFailed as failure:
            print(f"\n    ✘ {failure}", file=sys.stderr, flush=True)
            self.undo_all()
            return 1
        except (OSError, RuntimeError) as error:
            print(f"\n    ✘ {error}\n      The driver log ({self.args.driver_log}) says what the driver saw.",
                  file=sys.stderr, flush=True)
            self.undo_all()
            return 1
        print(f"\nThe walkthrough finished in {time.monotonic() - self.started:.0f} s: provisioned, mounted, "
              "shared, expanded and removed a replicated GlusterFS volume through CSI alone.", flush=True)
        return 0

    def undo_all(self):
        if not self.undo:
            return
        print("\n    Undoing what the walkthrough made:", file=sys.stderr, flush=True)
        while self.undo:
            what, action = self.undo.pop()
            try:
                action()
                print(f"      undone: {what}", file=sys.stderr, flush=True)
            except grpc.RpcError as error:
                print(f"      could not undo {what}: {error.code().name} {error.details()} "
                      "(scripts/demo's teardown removes it)", file=sys.stderr, flush=True)

    def introduce(self):
        info = self.identity.GetPluginInfo(self.pb.GetPluginInfoRequest(), timeout=30)
        ready = self.identity.Probe(self.pb.ProbeRequest(), timeout=30)
        capabilities = self.controller.ControllerGetCapabilities(self.pb.ControllerGetCapabilitiesRequest(),
                                                                 timeout=30).capabilities
        names = ", ".join(self.pb.ControllerServiceCapability.RPC.Type.Name(c.rpc.type) for c in capabilities)
        print(f"\nDriver {info.name} {info.vendor_version} on unix://{self.args.socket} "
              f"(ready: {ready.ready.value if ready.HasField('ready') else True})", flush=True)
        self.say(f"controller capabilities: {names}", indent=4)
        self.say(f"node: mounts and unmounts only under {self.kubelet} (its --kubelet-dir, kubelet's root "
                 "directory on a real node)", indent=4)

    def provision(self):
        self.step("Provision: a PVC asks for 10 GiB ReadWriteMany from a StorageClass with the in-tree parameters")
        parameters = {"resturl": self.args.heketi_url, "restuser": "admin", "gidMin": "40000", "gidMax": "50000",
                      "volumetype": "replicate:3"}
        self.say(f"""
            The StorageClass (the in-tree kubernetes.io/glusterfs parameters, provisioner renamed):
              provisioner: glusterfs.csi.heketi.io
              allowVolumeExpansion: true
              parameters:
                resturl: "{parameters['resturl']}"
                restuser: "admin"
                gidMin: "40000"
                gidMax: "50000"
                volumetype: "replicate:3"
                csi.storage.k8s.io/provisioner-secret-name: heketi-secret        # holds key: <admin key>
                csi.storage.k8s.io/controller-expand-secret-name: heketi-secret
            The external-provisioner calls CreateVolume with these parameters and the Secret's key.""")
        pv_name = f"pvc-{uuid.uuid4()}"
        rwx = self.capability()
        request = self.pb.CreateVolumeRequest(
            name=pv_name, capacity_range=self.pb.CapacityRange(required_bytes=10 * GIB), volume_capabilities=[rwx],
            parameters=parameters, secrets={"key": self.key})
        volume = self.call(f"CreateVolume {pv_name} (10 GiB, MULTI_NODE_MULTI_WRITER)", self.controller.CreateVolume,
                           request, "Check that Heketi answers at resturl and that the key is its admin key; "
                           f"the Heketi log is {self.args.heketi_log}.").volume
        self.undo.append((f"volume {volume.volume_id}", lambda: self.controller.DeleteVolume(
            self.pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets={"key": self.key}), timeout=TIMEOUT)))
        context = volume.volume_context
        described = self.heketi.volume(context["heketiVolumeID"])
        durability = described["durability"]
        self.ok(f"volume {volume.volume_id}, {volume.capacity_bytes // GIB} GiB")
        self.say(f"""
            Gluster volume {context['glusterVolume']} on {context['glusterHosts']}, group ID {context.get('gid')}
            Heketi: {described['size']} GiB, {durability['type']} x{durability['replicate']['replica']}, bricks:""")
        for brick in described["bricks"]:
            self.say(f"  {self.brick_host(brick)}:{brick['path']}")
        return volume

    def stage(self, volume):
        self.step("Stage: kubelet mounts the volume once on the node (NodeStageVolume)")
        digest = hashlib.sha256(volume.volume_id.encode()).hexdigest()
        staging = self.kubelet / "plugins/kubernetes.io/csi/glusterfs.csi.heketi.io" / digest / "globalmount"
        request = self.pb.NodeStageVolumeRequest(volume_id=volume.volume_id, staging_target_path=str(staging),
                                                 volume_capability=self.capability(),
                                                 volume_context=volume.volume_context)
        self.undo.append((f"staging at {staging}", lambda: self.node.NodeUnstageVolume(
            self.pb.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=str(staging)),
            timeout=TIMEOUT)))
        self.call("NodeStageVolume", self.node.NodeStageVolume, request,
                  "The glusterfs client could not mount it: the message above ends with the client log; "
                  "check that glusterd runs (scripts/start-glusterd) and /dev/fuse exists.")
        mount = self.mount_at(staging)
        self.ok(f"{mount['source']} is mounted ({mount['fstype']}) at")
        self.say(str(staging))
        return staging

    def publish(self, volume, staging):
        self.step("Publish: kubelet makes it the pod's volume (NodePublishVolume, a bind mount)")
        target = self.pod_dir("web-0")
        self.publish_at(volume, staging, target, readonly=False)
        mount = self.mount_at(target)
        self.ok(f"pod web-0 sees the volume at {target}")
        self.say(f"({mount['fstype']}, read-write, same mount as the staging path: device {mount['device']})")
        return target

    def write_and_read(self, volume, target):
        self.step("Use: the pod writes a file and reads it back; replicate:3 keeps it on all three bricks")
        text = f"written by pod web-0 at {time.strftime('%H:%M:%S')}\n"
        (target / "hello.txt").write_text(text)
        self.ok(f"wrote   {target / 'hello.txt'}")
        self.ok(f"read    {(target / 'hello.txt').read_text().strip()!r}")
        described = self.heketi.volume(volume.volume_context["heketiVolumeID"])
        for brick in described["bricks"]:
            on_brick = Path(brick["path"]) / "hello.txt"
            if not on_brick.exists() or on_brick.read_text() != text:
                raise StepFailed(f"the file is not on brick {on_brick}; gluster did not replicate it "
                                 "(see gluster volume heal <volume> info)")
            self.ok(f"brick   {self.brick_host(brick)}:{on_brick} holds the same text")

    def publish_read_only(self, volume, staging, first_target):
        self.step("Share: a second pod mounts the same volume read-only")
        target = self.pod_dir("report-0")
        self.publish_at(volume, staging, target, readonly=True)
        self.ok(f"pod report-0 reads {(target / 'hello.txt').read_text().strip()!r}")
        try:
            (target / "report.txt").write_text("this must not be written")
        except OSError as refused:
            self.ok(f"and its write is refused: {refused.strerror} (errno {refused.errno})")
        else:
            raise StepFailed(f"a write through the read-only publication {target} succeeded; "
                             "report this as a driver bug")
        (first_target / "from-web.txt").write_text("web-0 can still write\n")
        self.ok(f"pod web-0 still writes; report-0 sees it: {(target / 'from-web.txt').read_text().strip()!r}")

    def expand(self, volume, target):
        self.step("Expand: the PVC is edited to 12 GiB; the external-resizer calls ControllerExpandVolume")
        heketi_id = volume.volume_context["heketiVolumeID"]
        before = self.heketi.volume(heketi_id)
        request = self.pb.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id, capacity_range=self.pb.CapacityRange(required_bytes=12 * GIB),
            volume_capability=self.capability(), secrets={"key": self.key})
        response = self.call("ControllerExpandVolume to 12 GiB", self.controller.ControllerExpandVolume, request,
                             "Heketi could not add bricks: check its free space (GET /clusters, /nodes) and log "
                             f"{self.args.heketi_log}.")
        after = self.heketi.volume(heketi_id)
        self.ok(f"capacity {response.capacity_bytes // GIB} GiB, node expansion required: "
                f"{response.node_expansion_required} (GlusterFS grows online, the pods keep their mounts)")
        self.ok(f"Heketi: {before['size']} GiB → {after['size']} GiB, "
                f"{len(before['bricks'])} → {len(after['bricks'])} bricks")
        self.ok(f"the pod still reads {(target / 'hello.txt').read_text().strip()!r}")
        stats = self.node.NodeGetVolumeStats(self.pb.NodeGetVolumeStatsRequest(
            volume_id=volume.volume_id, volume_path=str(target)), timeout=TIMEOUT)
        total = next(u.total for u in stats.usage if u.unit == self.pb.VolumeUsage.BYTES)
        self.say(f"""
            NodeGetVolumeStats (what kubelet reports): {total / GIB:.1f} GiB total, condition
            {'abnormal: ' + stats.volume_condition.message if stats.volume_condition.abnormal else 'normal'}.
            (Here the bricks are directories on this machine's disk, so gluster reports that disk's size;
            with real Heketi each brick is an LV of its own and the total follows the volume.)""")

    def clean_up(self, volume):
        self.step("Clean up: the pods go, then the PVC (reclaimPolicy Delete)")
        while self.undo:
            what, action = self.undo.pop()
            try:
                action()
            except grpc.RpcError as error:
                raise StepFailed(f"removing {what} failed: {error.code().name}: {error.details()}") from None
            self.ok(f"removed {what}")
        name = volume.volume_context["glusterVolume"]
        left = {
            "Heketi volumes": self.heketi.volume_ids(),
            "gluster volumes of the demo": [v for v in csitools.gluster_volumes() if v == name],
            "mounts under the demo directory": [m["point"] for m in csitools.mounts_under(self.work)],
        }
        for what, items in left.items():
            if items:
                raise StepFailed(f"still there after the clean-up: {what}: {', '.join(items)}")
            self.ok(f"{what}: none")

    # ---------------------------------------------------------------------------------- helpers

    def capability(self):
        mode = self.pb.VolumeCapability.AccessMode
        return self.pb.VolumeCapability(mount=self.pb.VolumeCapability.MountVolume(),
                                        access_mode=mode(mode=mode.MULTI_NODE_MULTI_WRITER))

    def pod_dir(self, pod: str) -> Path:
        pod_uid = str(uuid.uuid5(uuid.NAMESPACE_DNS, pod))
        return self.kubelet / "pods" / pod_uid / "volumes/kubernetes.io~csi/data/mount"

    def publish_at(self, volume, staging, target, readonly: bool):
        request = self.pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
            volume_capability=self.capability(), readonly=readonly, volume_context=volume.volume_context)
        self.undo.append((f"publication at {target}", lambda: self.node.NodeUnpublishVolume(
            self.pb.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target)),
            timeout=TIMEOUT)))
        self.call(f"NodePublishVolume{' readonly' if readonly else ''}", self.node.NodePublishVolume, request,
                  "The bind mount failed; the driver log says why.")

    @staticmethod
    def mount_at(path: Path) -> dict:
        entries = [m for m in csitools.mounts() if m["point"] == str(path)]
        if not entries:
            raise StepFailed(f"the driver answered OK but nothing is mounted at {path}; report this as a driver bug")
        return entries[-1]

    def brick_host(self, brick: dict) -> str:
        node = self.heketi.get(f"/nodes/{brick['node']}")
        return node["hostnames"]["storage"][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--heketi-url", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--work", required=True, help="the demo's directory (its mounts are checked at the end)")
    parser.add_argument("--kubelet-dir", help="the driver's --kubelet-dir, where the staging and pod paths go "
                        "(default: WORK/kubelet)")
    parser.add_argument("--driver-log", default="(where the driver's stderr goes)")
    parser.add_argument("--heketi-log", default="(where Heketi's log goes)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("demo.py: run as root: staging and publishing mount file systems", file=sys.stderr)
        return 1
    return Demo(args).run()


if __name__ == "__main__":
    sys.exit(main())
