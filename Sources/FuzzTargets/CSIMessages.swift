import CSIProto
import SwiftProtobuf

/// The CSI messages the fuzz targets decode, and access to their secret fields.
struct MessageKind: Sendable {
    let name: String
    let decode: @Sendable ([UInt8]) throws -> any Message

    static func of<M: Message>(_ type: M.Type) -> MessageKind {
        MessageKind(name: M.protoMessageName) { bytes in try M(serializedBytes: bytes) }
    }

    static let all: [MessageKind] = [
        // Every request and response of CSI v1.12, in proto order. Append only: the first byte of
        // committed corpus files picks an entry by its index.
        .of(Csi_V1_GetPluginInfoRequest.self),
        .of(Csi_V1_GetPluginInfoResponse.self),
        .of(Csi_V1_GetPluginCapabilitiesRequest.self),
        .of(Csi_V1_GetPluginCapabilitiesResponse.self),
        .of(Csi_V1_ProbeRequest.self),
        .of(Csi_V1_ProbeResponse.self),
        .of(Csi_V1_CreateVolumeRequest.self),
        .of(Csi_V1_CreateVolumeResponse.self),
        .of(Csi_V1_DeleteVolumeRequest.self),
        .of(Csi_V1_DeleteVolumeResponse.self),
        .of(Csi_V1_ControllerPublishVolumeRequest.self),
        .of(Csi_V1_ControllerPublishVolumeResponse.self),
        .of(Csi_V1_ControllerUnpublishVolumeRequest.self),
        .of(Csi_V1_ControllerUnpublishVolumeResponse.self),
        .of(Csi_V1_ValidateVolumeCapabilitiesRequest.self),
        .of(Csi_V1_ValidateVolumeCapabilitiesResponse.self),
        .of(Csi_V1_ListVolumesRequest.self),
        .of(Csi_V1_ListVolumesResponse.self),
        .of(Csi_V1_ControllerGetVolumeRequest.self),
        .of(Csi_V1_ControllerGetVolumeResponse.self),
        .of(Csi_V1_ControllerModifyVolumeRequest.self),
        .of(Csi_V1_ControllerModifyVolumeResponse.self),
        .of(Csi_V1_GetCapacityRequest.self),
        .of(Csi_V1_GetCapacityResponse.self),
        .of(Csi_V1_ControllerGetCapabilitiesRequest.self),
        .of(Csi_V1_ControllerGetCapabilitiesResponse.self),
        .of(Csi_V1_CreateSnapshotRequest.self),
        .of(Csi_V1_CreateSnapshotResponse.self),
        .of(Csi_V1_DeleteSnapshotRequest.self),
        .of(Csi_V1_DeleteSnapshotResponse.self),
        .of(Csi_V1_ListSnapshotsRequest.self),
        .of(Csi_V1_ListSnapshotsResponse.self),
        .of(Csi_V1_GetSnapshotRequest.self),
        .of(Csi_V1_GetSnapshotResponse.self),
        .of(Csi_V1_ControllerExpandVolumeRequest.self),
        .of(Csi_V1_ControllerExpandVolumeResponse.self),
        .of(Csi_V1_NodeStageVolumeRequest.self),
        .of(Csi_V1_NodeStageVolumeResponse.self),
        .of(Csi_V1_NodeUnstageVolumeRequest.self),
        .of(Csi_V1_NodeUnstageVolumeResponse.self),
        .of(Csi_V1_NodePublishVolumeRequest.self),
        .of(Csi_V1_NodePublishVolumeResponse.self),
        .of(Csi_V1_NodeUnpublishVolumeRequest.self),
        .of(Csi_V1_NodeUnpublishVolumeResponse.self),
        .of(Csi_V1_NodeGetVolumeStatsRequest.self),
        .of(Csi_V1_NodeGetVolumeStatsResponse.self),
        .of(Csi_V1_NodeGetCapabilitiesRequest.self),
        .of(Csi_V1_NodeGetCapabilitiesResponse.self),
        .of(Csi_V1_NodeGetInfoRequest.self),
        .of(Csi_V1_NodeGetInfoResponse.self),
        .of(Csi_V1_NodeExpandVolumeRequest.self),
        .of(Csi_V1_NodeExpandVolumeResponse.self),
    ]
}

/// A message with a `secrets` map: every message the proto marks `csi_secret` today (the
/// redaction target checks that CSISecretFields lists no other field).
protocol HasSecrets {
    var secrets: [String: String] { get set }
}

extension Csi_V1_CreateVolumeRequest: HasSecrets {}
extension Csi_V1_DeleteVolumeRequest: HasSecrets {}
extension Csi_V1_ControllerPublishVolumeRequest: HasSecrets {}
extension Csi_V1_ControllerUnpublishVolumeRequest: HasSecrets {}
extension Csi_V1_ValidateVolumeCapabilitiesRequest: HasSecrets {}
extension Csi_V1_ControllerModifyVolumeRequest: HasSecrets {}
extension Csi_V1_CreateSnapshotRequest: HasSecrets {}
extension Csi_V1_DeleteSnapshotRequest: HasSecrets {}
extension Csi_V1_ListSnapshotsRequest: HasSecrets {}
extension Csi_V1_GetSnapshotRequest: HasSecrets {}
extension Csi_V1_ControllerExpandVolumeRequest: HasSecrets {}
extension Csi_V1_NodeStageVolumeRequest: HasSecrets {}
extension Csi_V1_NodePublishVolumeRequest: HasSecrets {}
extension Csi_V1_NodeExpandVolumeRequest: HasSecrets {}

/// `message` with its secret values replaced by `transform(key, value)`; other messages unchanged.
func replacingSecrets<M: Message>(of message: M, _ transform: (String, String) -> String) -> M {
    guard var bearer = message as? any HasSecrets else { return message }
    bearer.secrets = Dictionary(uniqueKeysWithValues: bearer.secrets.map { ($0.key, transform($0.key, $0.value)) })
    return bearer as! M
}

/// The secret values of `message` (empty for messages without secrets).
func secretValues(of message: any Message) -> [String: String] {
    (message as? any HasSecrets)?.secrets ?? [:]
}
