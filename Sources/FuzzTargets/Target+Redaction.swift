import CSICore
import CSIProto
import SwiftProtobuf

/// Log redaction (`Sources/CSICore/Redaction.swift`, `Sources/CSIProto/csi+Secrets.swift`): what the
/// dispatch layer writes for every request and response at trace level.
///
/// Input: the first byte picks the message type (`MessageKind.all`), the rest is its protobuf
/// encoding, as it arrives on the wire.
enum RedactionTarget {
    static let target = FuzzTarget(
        name: "redaction",
        summary: "every CSI message: redacted logs never show a secret value, and show everything else",
        run: run)

    static func run(_ bytes: [UInt8]) {
        var reader = FuzzReader(bytes)
        let kind = MessageKind.all[Int(reader.byte()) % MessageKind.all.count]
        guard let message = try? kind.decode(reader.rest()) else { return }
        check(message)
    }

    static func check<M: Message>(_ message: M) {
        let secretFields = CSISecretFields.byMessage[M.protoMessageName]
        if let secretFields {
            expect(message is any CSISecretBearing, "\(M.protoMessageName) has secrets but is not CSISecretBearing")
            expect(
                secretFields == ["secrets"] && message is any HasSecrets,
                "\(M.protoMessageName) has secret fields \(secretFields): teach this target about them")
        } else {
            expect(Redaction.loggable(message) == message.textFormatString(), "\(M.protoMessageName) was changed")
        }

        // Every secret value carries a marker no other field can hold: none may reach the log text.
        var index = 0
        let marked = replacingSecrets(of: message) { _, value in
            index += 1
            return "\(FuzzFixture.token)-\(index)-\(value)"
        }
        let logged = Redaction.loggable(marked)
        expect(
            !logged.contains(FuzzFixture.token), "a secret value of \(M.protoMessageName) reached the log: \(logged)")
        // Keys stay (a log shows which secrets were given), values become the placeholder, and the
        // rest of the message is logged as it is.
        let expected = replacingSecrets(of: message) { _, _ in CSISecretFields.placeholder }
        expect(
            logged == expected.textFormatString() || secretFields == nil,
            "\(M.protoMessageName) logged as\n\(logged)\nnot as\n\(expected.textFormatString())")

        // A message re-encodes to the same message (what the dispatch layer does with responses).
        guard let bytes = try? message.serializedBytes() as [UInt8] else {
            fatalError("property violated: a decoded \(M.protoMessageName) cannot be encoded")
        }
        expect(
            (try? M(serializedBytes: bytes))?.isEqualTo(message: message) == true, "\(M.protoMessageName) round trip")
    }
}
