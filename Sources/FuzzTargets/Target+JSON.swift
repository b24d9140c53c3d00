import CSICore

@testable import Heketi

/// The hand-written JSON reader and writer (`Sources/Heketi/JSONValue.swift`) that every Heketi
/// answer goes through, and the JSON string quoting of log lines and JWT claims
/// (`Sources/CSICore/JSONString.swift`), each checked against the other.
///
/// Input: any bytes, read as a JSON text.
enum JSONTarget {
    static let target = FuzzTarget(
        name: "json",
        summary: "JSON reader and writers: values survive write and read; errors name a byte offset",
        run: run)

    static func run(_ bytes: [UInt8]) {
        checkQuoting(String(decoding: bytes, as: UTF8.self))
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes)
        } catch {
            checkError(error, count: bytes.count)
            return
        }
        let text = value.text
        let again: JSONValue
        do {
            again = try JSONValue(parsing: text)
        } catch {
            fatalError(
                "property violated: the writer's '\(String(decoding: text, as: UTF8.self))' does not parse: \(error)")
        }
        expect(again == value, "\(value) written as '\(String(decoding: text, as: UTF8.self))' reads as \(again)")
        expect(again.text == text, "writing is not stable for \(value)")
        expect(depth(value) <= 64, "a value nested \(depth(value)) deep was accepted")
    }

    /// A parse error says what and at which byte, within the input.
    static func checkError(_ error: HeketiWireError, count: Int) {
        let reason = error.reason
        expect(reason.hasPrefix("not JSON: "), "JSON error '\(reason)' does not say what it is")
        let words = reason.split(separator: " ")
        guard words.count >= 3, words[words.count - 3] == "at", words[words.count - 2] == "byte",
            let offset = Int(words[words.count - 1])
        else {
            fatalError("property violated: JSON error '\(reason)' names no byte offset")
        }
        expect(offset >= 0 && offset <= count, "JSON error at byte \(offset) of \(count)")
    }

    /// Quoting for log lines and JWT claims reads back as the same string with Heketi's reader, and
    /// so does the reader's own writer.
    static func checkQuoting(_ string: String) {
        let quoted = JSONString.quoted(string)
        expect(!hasControlCharacter(quoted.replacingDEL()), "quoted text has raw control characters: \(quoted)")
        expect(
            (try? JSONValue(parsing: Array(quoted.utf8))) == .string(string),
            "JSONString.quoted(\(string.debugDescription)) = \(quoted) does not read back")
        let written = JSONValue.string(string).text
        expect(
            (try? JSONValue(parsing: written)) == .string(string),
            "the JSON writer's \(String(decoding: written, as: UTF8.self)) does not read back as \(string.debugDescription)"
        )
    }

    static func depth(_ value: JSONValue) -> Int {
        switch value {
        case .array(let values): 1 + (values.map(depth).max() ?? 0)
        case .object(let fields): 1 + (fields.values.map(depth).max() ?? 0)
        default: 0
        }
    }
}

extension String {
    /// DEL is allowed raw in JSON strings; only C0 controls must be escaped.
    fileprivate func replacingDEL() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0.value == 0x7f ? "?" : $0 }))
    }
}
