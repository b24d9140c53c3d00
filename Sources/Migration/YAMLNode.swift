/// A YAML document as `glusterfs-csi migrate` writes it: block style, two-space indentation,
/// sequences indented under their key (as deploy/ is written), map entries in the order given.
///
/// Strings are written plain only when no YAML reader could take them for anything but that
/// string; everything else is double-quoted, with escapes for what YAML does not allow as it is,
/// so `kubectl apply` reads back exactly the text that was meant.
indirect enum YAMLNode: Equatable {
    /// A string, plain when safe, else quoted.
    case string(String)
    /// A string that is always quoted (volume attributes, annotations: strings that look like
    /// numbers are common there, and one rule for the whole map reads better).
    case quoted(String)
    /// A boolean.
    case bool(Bool)
    /// A map, its entries in this order.
    case map([(String, YAMLNode)])
    /// A sequence.
    case list([YAMLNode])

    static func == (left: YAMLNode, right: YAMLNode) -> Bool {
        left.text(indent: 0) == right.text(indent: 0)
    }

    /// The document's text, a newline after every line.
    var document: String { text(indent: 0) }

    private func text(indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .map(let entries):
            var output = ""
            for (key, value) in entries {
                output += pad + Self.scalar(key)
                switch value {
                case .map(let children) where children.isEmpty: output += ": {}\n"
                case .list(let items) where items.isEmpty: output += ": []\n"
                case .map: output += ":\n" + value.text(indent: indent + 2)
                case .list: output += ":\n" + value.text(indent: indent + 2)
                default: output += ": " + value.inline + "\n"
                }
            }
            return output
        case .list(let items):
            var output = ""
            for item in items {
                switch item {
                case .map(let entries) where !entries.isEmpty:
                    // The first entry on the dash's line, the rest under it.
                    let body = item.text(indent: indent + 2)
                    output += pad + "- " + body.dropFirst(indent + 2)
                case .list(let inner) where !inner.isEmpty:
                    output += pad + "-\n" + item.text(indent: indent + 2)
                default:
                    output += pad + "- " + item.inline + "\n"
                }
            }
            return output
        default:
            return pad + inline + "\n"
        }
    }

    private var inline: String {
        switch self {
        case .string(let text): Self.scalar(text)
        case .quoted(let text): Self.quoted(text)
        case .bool(let value): value ? "true" : "false"
        case .map: "{}"
        case .list: "[]"
        }
    }

    /// `text` plain if that reads back as this same string in YAML 1.1 and 1.2, else quoted.
    static func scalar(_ text: String) -> String {
        isPlainSafe(text) ? text : quoted(text)
    }

    /// `text` double-quoted: `"` and `\` escaped, and every character YAML does not allow
    /// unescaped (C0 and C1 controls, DEL, U+FEFF, U+FFFE, U+FFFF) as `\uXXXX` or its short form.
    static func quoted(_ text: String) -> String {
        var output = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\t": output += "\\t"
            case "\r": output += "\\r"
            case _
            where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0xFEFF
                || scalar.value >= 0xFFFE && scalar.value <= 0xFFFF:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                output.unicodeScalars.append(scalar)
            }
        }
        return output + "\""
    }

    /// Plain only for letters, digits and `. _ / -`, starting with a letter or digit, and not a
    /// word YAML 1.1 reads as a boolean or null. A string starting with a digit must contain a
    /// letter that no number, date or time can (`10Gi`): `40000`, `1e3`, `0x1f`, `2024-01-02` and
    /// hex IDs are quoted.
    static func isPlainSafe(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, isAlphanumeric(first) else { return false }
        let allowed = bytes.allSatisfy { byte in
            isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "-")
        }
        guard allowed else { return false }
        let words: Set<String> = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"]
        if words.contains(text.lowercased()) { return false }
        if first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") {
            // Letters a number can contain: hex digits, exponents, 0x/0o/0b prefixes, .inf/.nan.
            let numeric = Set("abcdefABCDEFxXoOiInN_.-/0123456789".utf8)
            return bytes.contains { !numeric.contains($0) }
        }
        return true
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }
}
