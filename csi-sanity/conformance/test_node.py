"""Node service (CSI v1.12 "Node Service RPC"): NodeGetInfo, NodeStageVolume, NodeUnstageVolume,
NodePublishVolume, NodeUnpublishVolume, NodeGetVolumeStats — required fields, idempotency, the
second-publication table of NodePublishVolume, read-only publications and volume statistics, checked
against the kernel's mount table."""

import errno
import os

import grpc
import pytest

from conftest import TIMEOUT, expect_code, rpc_error, statvfs_usage, unknown_volume_id
import csitools

MULTI_NODE = ["MULTI_NODE_READER_ONLY", "MULTI_NODE_SINGLE_WRITER", "MULTI_NODE_MULTI_WRITER"]
ONE_PUBLICATION = ["SINGLE_NODE_WRITER", "SINGLE_NODE_READER_ONLY", "SINGLE_NODE_SINGLE_WRITER"]
READ_ONLY_MODES = {"SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY"}


def mount_at(path) -> dict | None:
    entries = [m for m in csitools.mounts() if m["point"] == str(path)]
    return entries[-1] if entries else None


def is_read_only(path) -> bool:
    return "ro" in mount_at(path)["options"].split(",")


@pytest.fixture(scope="module")
def volume(shared_volume):
    return shared_volume


# ---------------------------------------------------------------------------------------- NodeGetInfo


def test_node_get_info_names_this_node(pb, node, env):
    info = node.NodeGetInfo(pb.NodeGetInfoRequest(), timeout=TIMEOUT)
    assert info.node_id == env.node_id
    assert 0 < len(info.node_id.encode()) <= 128
    assert info.max_volumes_per_node >= 0
    for key, value in info.accessible_topology.segments.items():
        assert key and value
    assert node.NodeGetInfo(pb.NodeGetInfoRequest(), timeout=TIMEOUT) == info


# ------------------------------------------------------------------------------ required fields


def test_stage_requires_volume_id_staging_path_and_capability(pb, node, cap, volume, main_node, res):
    staging = str(main_node.staging(res.test))
    full = dict(volume_id=volume.volume_id, staging_target_path=staging, volume_capability=cap(),
                volume_context=volume.volume_context)
    for missing in ("volume_id", "staging_target_path", "volume_capability"):
        request = pb.NodeStageVolumeRequest(**{k: v for k, v in full.items() if k != missing})
        error = expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeStageVolume, request)
        assert missing.split("_")[0] in error.details().lower(), error.details()
    assert mount_at(staging) is None


def test_stage_refuses_a_relative_staging_path_and_block_access(pb, node, cap, volume, main_node, res):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeStageVolume, pb.NodeStageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path="relative/staging", volume_capability=cap(),
        volume_context=volume.volume_context))
    staging = main_node.staging(res.test)
    error = rpc_error(node.NodeStageVolume, pb.NodeStageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=cap(block=True),
        volume_context=volume.volume_context))
    # Block access is unsupported by the plugin (INVALID_ARGUMENT) or exceeds the volume's
    # capabilities (FAILED_PRECONDITION); either way nothing is mounted.
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION), error
    assert mount_at(staging) is None


def test_unstage_requires_volume_id_and_staging_path(pb, node, volume, main_node):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeUnstageVolume,
                pb.NodeUnstageVolumeRequest(staging_target_path=str(main_node.staging("no-volume-id"))))
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeUnstageVolume,
                pb.NodeUnstageVolumeRequest(volume_id=volume.volume_id))


def test_publish_requires_volume_id_target_path_and_capability(pb, node, cap, volume, main_node, res):
    # The requests upstream csi-sanity sends: each lacks a field and everything after it.
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodePublishVolume, pb.NodePublishVolumeRequest())
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodePublishVolume,
                pb.NodePublishVolumeRequest(volume_id=volume.volume_id))
    target = main_node.target(res.test, "pod")
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodePublishVolume,
                pb.NodePublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target)))
    # And with everything else set, one field at a time.
    staging = res.stage(main_node, volume, cap())
    full = dict(volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
                volume_capability=cap(), volume_context=volume.volume_context)
    for missing in ("volume_id", "target_path", "volume_capability"):
        expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodePublishVolume,
                    pb.NodePublishVolumeRequest(**{k: v for k, v in full.items() if k != missing}))
    assert mount_at(target) is None


def test_publish_without_a_staging_path_is_a_failed_precondition(pb, node, cap, volume, main_node, res):
    staging = res.stage(main_node, volume, cap())
    target = main_node.target(res.test, "pod")
    assert mount_at(staging) is not None
    expect_code(grpc.StatusCode.FAILED_PRECONDITION, node.NodePublishVolume, pb.NodePublishVolumeRequest(
        volume_id=volume.volume_id, target_path=str(target), volume_capability=cap(),
        volume_context=volume.volume_context))


def test_unpublish_requires_volume_id_and_target_path(pb, node, volume):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeUnpublishVolume, pb.NodeUnpublishVolumeRequest())
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeUnpublishVolume,
                pb.NodeUnpublishVolumeRequest(volume_id=volume.volume_id))


def test_volume_stats_requires_volume_id_and_path(pb, node, volume, main_node):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeGetVolumeStats,
                pb.NodeGetVolumeStatsRequest(volume_path=str(main_node.base)))
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeGetVolumeStats,
                pb.NodeGetVolumeStatsRequest(volume_id=volume.volume_id))


# ------------------------------------------------------------------------------------ not found


def test_stage_of_a_volume_that_does_not_exist_is_not_found(pb, node, cap, volume, main_node, res):
    context = dict(volume.volume_context, glusterVolume="sanity-no-such-volume")
    staging = main_node.staging(res.test)
    try:
        expect_code(grpc.StatusCode.NOT_FOUND, node.NodeStageVolume, pb.NodeStageVolumeRequest(
            volume_id=unknown_volume_id(), staging_target_path=str(staging), volume_capability=cap(),
            volume_context=context))
    finally:
        assert mount_at(staging) is None, "a failed stage must leave nothing mounted"


def test_volume_stats_of_a_path_that_does_not_exist_is_not_found(pb, node, volume, main_node):
    expect_code(grpc.StatusCode.NOT_FOUND, node.NodeGetVolumeStats, pb.NodeGetVolumeStatsRequest(
        volume_id=volume.volume_id, volume_path=str(main_node.base / "no" / "such" / "path")))
    expect_code(grpc.StatusCode.NOT_FOUND, node.NodeGetVolumeStats, pb.NodeGetVolumeStatsRequest(
        volume_id=unknown_volume_id(), volume_path=str(main_node.base / "no" / "such" / "path")))


def test_volume_stats_of_a_relative_path_that_does_not_exist_is_not_found(pb, node, volume):
    expect_code(grpc.StatusCode.NOT_FOUND, node.NodeGetVolumeStats,
                pb.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path="some/path"))


def test_publish_of_a_volume_that_is_not_staged_is_a_failed_precondition(pb, node, cap, volume, main_node, res):
    target = main_node.target(res.test, "pod")
    expect_code(grpc.StatusCode.FAILED_PRECONDITION, node.NodePublishVolume, pb.NodePublishVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(main_node.staging(res.test)), target_path=str(target),
        volume_capability=cap(), volume_context=volume.volume_context))
    assert mount_at(target) is None


def test_unpublish_and_unstage_of_what_was_never_there_succeed(pb, node, volume, main_node, res):
    res.unpublish(main_node, volume, main_node.target(res.test, "never"))
    res.unstage(main_node, volume, main_node.staging(res.test, "never"))
    node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(
        volume_id=unknown_volume_id(), target_path=str(main_node.target(res.test, "unknown-volume"))), timeout=TIMEOUT)


# ------------------------------------------------------------------------ idempotency, mount table


def test_every_node_step_is_idempotent_and_shows_in_the_mount_table(pb, node, cap, volume, main_node, res):
    rwx = cap()
    staging = main_node.staging(res.test)
    for _ in range(2):
        res.stage(main_node, volume, rwx, staging)
    staged = mount_at(staging)
    assert staged and staged["fstype"] == "fuse.glusterfs"
    assert staged["source"].endswith(":" + volume.volume_context["glusterVolume"]) or staged["source"].endswith(
        ":/" + volume.volume_context["glusterVolume"]), staged
    assert len([m for m in csitools.mounts() if m["point"] == str(staging)]) == 1, "staged twice: one mount only"

    target = main_node.target(res.test, "pod")
    for _ in range(2):
        res.publish(main_node, volume, rwx, staging, "pod")
    published = mount_at(target)
    assert published and published["device"] == staged["device"], "the target is a bind of the staged volume"
    assert len([m for m in csitools.mounts() if m["point"] == str(target)]) == 1
    assert not is_read_only(target)

    for _ in range(2):
        res.unpublish(main_node, volume, target)
    assert mount_at(target) is None
    assert not target.exists(), "NodeUnpublishVolume must remove the target path it created"
    for _ in range(2):
        res.unstage(main_node, volume, staging)
    assert mount_at(staging) is None
    assert csitools.mounts_under(main_node.base / res.test) == []


def test_stage_again_with_an_incompatible_capability_already_exists(pb, node, cap, volume, main_node, res):
    staging = res.stage(main_node, volume, cap("MULTI_NODE_MULTI_WRITER"))
    expect_code(grpc.StatusCode.ALREADY_EXISTS, node.NodeStageVolume, pb.NodeStageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=cap("MULTI_NODE_READER_ONLY"),
        volume_context=volume.volume_context))
    assert not is_read_only(staging), "the refused request must not change the staged mount"


def test_publish_again_at_the_same_target_with_other_arguments_already_exists(pb, node, cap, volume, main_node, res):
    rwx = cap()
    staging = res.stage(main_node, volume, rwx)
    target = res.publish(main_node, volume, rwx, staging, "pod")
    expect_code(grpc.StatusCode.ALREADY_EXISTS, node.NodePublishVolume, pb.NodePublishVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target), volume_capability=rwx,
        readonly=True, volume_context=volume.volume_context))
    assert not is_read_only(target)


@pytest.mark.parametrize("mode", ONE_PUBLICATION + ["SINGLE_NODE_MULTI_WRITER"] + MULTI_NODE)
def test_a_second_target_on_one_node_follows_the_access_mode(pb, node, cap, volume, main_node, res, mode):
    """The spec's table for a second NodePublishVolume with T1 != T2 (SINGLE_NODE_MULTI_WRITER advertised):
    OK for MULTI_NODE_* and SINGLE_NODE_MULTI_WRITER, FAILED_PRECONDITION for the one-publication modes."""
    capability = cap(mode)
    staging = res.stage(main_node, volume, capability)
    first = res.publish(main_node, volume, capability, staging, "first")
    second = main_node.target(res.test, "second")
    request = pb.NodePublishVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(second),
        volume_capability=capability, volume_context=volume.volume_context)
    if mode in ONE_PUBLICATION:
        expect_code(grpc.StatusCode.FAILED_PRECONDITION, node.NodePublishVolume, request)
        assert mount_at(second) is None
    else:
        res.publish(main_node, volume, capability, staging, "second")
        assert mount_at(second)["device"] == mount_at(first)["device"]
    assert is_read_only(first) == (mode in READ_ONLY_MODES)


@pytest.mark.parametrize("how", ["readonly flag", "MULTI_NODE_READER_ONLY"])
def test_a_read_only_publication_refuses_writes(pb, node, cap, volume, main_node, res, how):
    capability = cap("MULTI_NODE_READER_ONLY" if how == "MULTI_NODE_READER_ONLY" else "MULTI_NODE_MULTI_WRITER")
    staging = res.stage(main_node, volume, capability)
    target = res.publish(main_node, volume, capability, staging, "reader", readonly=(how == "readonly flag"))
    assert is_read_only(target)
    with pytest.raises(OSError) as refused:
        (target / "must-not-exist.txt").write_text("x")
    assert refused.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    os.listdir(target)  # reading still works


# ------------------------------------------------------------------------------- NodeGetVolumeStats


def test_volume_stats_report_bytes_inodes_and_condition_of_the_mount(pb, node, cap, volume, main_node, res):
    rwx = cap()
    staging = res.stage(main_node, volume, rwx)
    target = res.publish(main_node, volume, rwx, staging, "pod")
    (target / "some-data.bin").write_bytes(os.urandom(1 << 20))
    for path, staging_path in ((target, str(staging)), (target, ""), (staging, "")):
        request = pb.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=str(path),
                                               staging_target_path=staging_path)
        stats = node.NodeGetVolumeStats(request, timeout=TIMEOUT)
        usage = {pb.VolumeUsage.Unit.Name(u.unit): u for u in stats.usage}
        assert set(usage) == {"BYTES", "INODES"}
        for unit in usage.values():
            assert unit.total > 0 and 0 <= unit.used <= unit.total and 0 <= unit.available <= unit.total
        total_bytes, total_inodes = statvfs_usage(path)
        assert usage["BYTES"].total == total_bytes, "the reported size is the mount's own statvfs"
        assert usage["INODES"].total == total_inodes
        # VOLUME_CONDITION is advertised, so the condition is reported, and it is healthy.
        assert stats.HasField("volume_condition") and not stats.volume_condition.abnormal
