import CSICore
import CSIProto
import SwiftProtobuf
import Testing

private let sentinel = "s3ntinel-Secret-Value-7f1c"

/// Builds one message of each secret-bearing type with the sentinel in its secrets.
private func messagesWithSecrets() -> [any Message] {
    func filled<M: Message>(_ type: M.Type, _ set: (inout M) -> Void) -> any Message {
        var message = M()
        set(&message)
        return message
    }
    let secrets = ["key": sentinel, "user": "admin"]
    return [
        filled(Csi_V1_CreateVolumeRequest.self) {
            $0.name = "pvc-1"; $0.secrets = secrets
        },
        filled(Csi_V1_DeleteVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_ControllerPublishVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_ControllerUnpublishVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_ValidateVolumeCapabilitiesRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_ControllerModifyVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_CreateSnapshotRequest.self) {
            $0.name = "s1"; $0.secrets = secrets
        },
        filled(Csi_V1_DeleteSnapshotRequest.self) {
            $0.snapshotID = "s1"; $0.secrets = secrets
        },
        filled(Csi_V1_ListSnapshotsRequest.self) { $0.secrets = secrets },
        filled(Csi_V1_GetSnapshotRequest.self) {
            $0.snapshotID = "s1"; $0.secrets = secrets
        },
        filled(Csi_V1_ControllerExpandVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_NodeStageVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_NodePublishVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
        filled(Csi_V1_NodeExpandVolumeRequest.self) {
            $0.volumeID = "v1"; $0.secrets = secrets
        },
    ]
}

@Suite struct RedactionTests {
    @Test func everySecretBearingMessageIsCovered() {
        let covered = Set(messagesWithSecrets().map { type(of: $0).protoMessageName })
        #expect(covered == Set(CSISecretFields.byMessage.keys))
    }

    @Test(arguments: messagesWithSecrets().map { Box($0) })
    func secretsNeverReachTheLoggedText(_ box: Box) {
        let text = Redaction.loggable(box.message)
        #expect(!text.contains(sentinel))
        #expect(text.contains("<redacted>"))
        // Keys stay visible so an admin can see which secrets were supplied.
        #expect(text.contains("\"user\""))
    }

    @Test func theOriginalMessageIsNotModified() {
        var request = Csi_V1_NodeStageVolumeRequest()
        request.secrets = ["key": sentinel]
        _ = Redaction.loggable(request)
        #expect(request.secrets["key"] == sentinel)
    }

    @Test func messagesWithoutSecretsAreLoggedWhole() {
        var request = Csi_V1_NodeUnstageVolumeRequest()
        request.volumeID = "heketi-volume-1"
        request.stagingTargetPath = "/var/lib/kubelet/staging"
        let text = Redaction.loggable(request)
        #expect(text.contains("heketi-volume-1"))
        #expect(text.contains("/var/lib/kubelet/staging"))
    }
}

/// Makes protobuf existentials usable as test arguments.
struct Box: Sendable, CustomTestStringConvertible {
    let message: any Message & Sendable
    init(_ message: any Message) { self.message = message as! any Message & Sendable }
    var testDescription: String { type(of: message).protoMessageName }
}
