"""Identity service (CSI v1.12 "Identity Service RPC"): GetPluginInfo, GetPluginCapabilities, Probe."""

import re

# GetPluginInfo.name: domain-name notation, at most 63 characters, alphanumeric at both ends.
DRIVER_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


def test_plugin_info_has_a_valid_name_and_a_version(pb, identity):
    info = identity.GetPluginInfo(pb.GetPluginInfoRequest())
    assert DRIVER_NAME.match(info.name), f"name '{info.name}' is not in domain-name notation"
    assert "." in info.name, "the spec recommends a reverse-domain name such as glusterfs.csi.heketi.io"
    assert info.vendor_version, "vendor_version is REQUIRED"
    assert identity.GetPluginInfo(pb.GetPluginInfoRequest()) == info, "GetPluginInfo must not change between calls"


def test_plugin_capabilities_of_a_process_serving_everything(pb, identity):
    capabilities = identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest()).capabilities
    services = {c.service.type for c in capabilities if c.HasField("service")}
    expansions = {c.volume_expansion.type for c in capabilities if c.HasField("volume_expansion")}
    assert services == {pb.PluginCapability.Service.CONTROLLER_SERVICE}
    # GlusterFS volumes grow while mounted: ONLINE, which also allows offline expansion.
    assert expansions == {pb.PluginCapability.VolumeExpansion.ONLINE}
    for capability in capabilities:
        assert capability.WhichOneof("type") is not None, "a capability must set its type"


def test_plugin_capabilities_of_a_node_only_process_offer_no_controller(pb, rpc, node_only):
    stub = rpc.IdentityStub(node_only.channel)
    capabilities = stub.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest()).capabilities
    services = {c.service.type for c in capabilities if c.HasField("service")}
    assert pb.PluginCapability.Service.CONTROLLER_SERVICE not in services
    assert stub.GetPluginInfo(pb.GetPluginInfoRequest()).name, "a node-only process has a name too"


def test_probe_is_ready_and_repeatable(pb, identity, rpc, node_only):
    for stub in (identity, rpc.IdentityStub(node_only.channel)):
        for _ in range(3):
            response = stub.Probe(pb.ProbeRequest())
            # `ready` is optional; when set it must say ready for a healthy plugin.
            assert not response.HasField("ready") or response.ready.value
