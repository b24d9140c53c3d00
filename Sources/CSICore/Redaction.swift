import CSIProto
import SwiftProtobuf

/// Renders messages for logs with every `csi_secret` field blanked.
///
/// Which fields are secret comes from the proto itself: scripts/generate-proto emits a
/// `CSISecretBearing` conformance for every message with a field marked `(csi_secret) = true`,
/// so a secret added to the proto is redacted without touching this file.
public enum Redaction {
    public static func loggable(_ message: any Message) -> String {
        if var bearer = message as? any (Message & CSISecretBearing) {
            bearer.redactSecrets()
            return bearer.textFormatString()
        }
        return message.textFormatString()
    }
}
