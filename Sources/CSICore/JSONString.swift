/// JSON string literals, for the few places that write JSON by hand (log lines, JWT claims)
/// rather than pulling in an encoder.
public enum JSONString {
    /// `text` as a JSON string literal, quotes included: `"`, `\` and control characters escaped.
    public static func quoted(_ text: String) -> String {
        var output = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                let code = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - code.count) + code
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output + "\""
    }
}
