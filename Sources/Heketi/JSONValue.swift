/// A JSON value, with a reader for Heketi's answers and a writer for its request bodies.
///
/// Heketi's bodies are small and flat; a Codable decoder spends most of a request's client-side
/// CPU on them (containers, key lookups, metadata), so they are read into this tree and picked
/// apart by hand (`JSONFields`), and written with sorted keys. Public for the other readers of
/// JSON in the package (`glusterfs-csi migrate` reads Kubernetes objects with it).
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses one JSON text (RFC 8259). Throws with the byte offset of the first problem.
    public init(parsing bytes: [UInt8]) throws(HeketiWireError) {
        var reader = JSONReader(bytes)
        self = try reader.document()
    }

    /// The JSON text of this value: object keys sorted, no whitespace.
    public var text: [UInt8] {
        var output: [UInt8] = []
        write(to: &output)
        return output
    }

    private func write(to output: inout [UInt8]) {
        switch self {
        case .null: output += Array("null".utf8)
        case .bool(let value): output += Array((value ? "true" : "false").utf8)
        case .number(let value):
            // Integral values as integers (Heketi's Go structs read sizes and GIDs into ints), as far
            // as a Double holds them exactly.
            if value == value.rounded(), abs(value) <= 9_007_199_254_740_992 {
                output += Array(String(Int64(value)).utf8)
            } else {
                output += Array(String(value).utf8)
            }
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let values):
            output.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                value.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let fields):
            output.append(UInt8(ascii: "{"))
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.writeString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                fields[key]!.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    private static func writeString(_ text: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output += Array(#"\""#.utf8)
            case UInt8(ascii: "\\"): output += Array(#"\\"#.utf8)
            case UInt8(ascii: "\n"): output += Array(#"\n"#.utf8)
            case UInt8(ascii: "\r"): output += Array(#"\r"#.utf8)
            case UInt8(ascii: "\t"): output += Array(#"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

/// A recursive-descent reader over UTF-8 bytes.
private struct JSONReader {
    /// Deeper nesting than any Heketi body; stops a hostile body from exhausting the stack.
    static let maxDepth = 64

    let bytes: [UInt8]
    var position = 0
    var depth = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func document() throws(HeketiWireError) -> JSONValue {
        let value = try self.value()
        skipSpace()
        guard position == bytes.count else { throw problem("text after the JSON value") }
        return value
    }

    private func problem(_ what: String) -> HeketiWireError {
        HeketiWireError("not JSON: \(what) at byte \(position)")
    }

    private mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func value() throws(HeketiWireError) -> JSONValue {
        skipSpace()
        guard position < bytes.count else { throw problem("unexpected end") }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            return try nested { (reader: inout JSONReader) throws(HeketiWireError) in try reader.object() }
        case UInt8(ascii: "["):
            return try nested { (reader: inout JSONReader) throws(HeketiWireError) in try reader.array() }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw problem("unexpected character")
        }
    }

    private mutating func nested(
        _ body: (inout JSONReader) throws(HeketiWireError) -> JSONValue
    ) throws(HeketiWireError) -> JSONValue {
        depth += 1
        guard depth <= Self.maxDepth else { throw problem("nesting deeper than \(Self.maxDepth)") }
        defer { depth -= 1 }
        return try body(&self)
    }

    private mutating func literal(_ word: StaticString, _ value: JSONValue) throws(HeketiWireError) -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count,
            word.withUTF8Buffer({ $0.elementsEqual(bytes[position..<position + count]) })
        else { throw problem("unexpected character") }
        position += count
        return value
    }

    private mutating func object() throws(HeketiWireError) -> JSONValue {
        position += 1  // {
        var fields: [String: JSONValue] = [:]
        if skipSpace(thenConsume: UInt8(ascii: "}")) { return .object(fields) }
        repeat {
            skipSpace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw problem("expected a field name")
            }
            let key = try string()
            guard skipSpace(thenConsume: UInt8(ascii: ":")) else { throw problem("expected ':'") }
            // As Go's decoder: the last of repeated keys wins.
            fields[key] = try value()
        } while try !endOfElement(closing: UInt8(ascii: "}"))
        return .object(fields)
    }

    private mutating func array() throws(HeketiWireError) -> JSONValue {
        position += 1  // [
        var values: [JSONValue] = []
        if skipSpace(thenConsume: UInt8(ascii: "]")) { return .array(values) }
        repeat {
            values.append(try value())
        } while try !endOfElement(closing: UInt8(ascii: "]"))
        return .array(values)
    }

    /// Skips whitespace; then consumes `byte` if it comes next, and says whether it did.
    private mutating func skipSpace(thenConsume byte: UInt8) -> Bool {
        skipSpace()
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    /// After an element of an object or array: consumes the "," before the next element (false)
    /// or the `closing` bracket (true).
    private mutating func endOfElement(closing: UInt8) throws(HeketiWireError) -> Bool {
        if skipSpace(thenConsume: UInt8(ascii: ",")) { return false }
        guard position < bytes.count else { throw problem("unexpected end") }
        guard bytes[position] == closing else {
            throw problem("expected ',' or '\(Character(Unicode.Scalar(closing)))'")
        }
        position += 1
        return true
    }

    private mutating func number() throws(HeketiWireError) -> JSONValue {
        let start = position
        func digits(_ reader: inout JSONReader) -> Int {
            let first = reader.position
            while reader.position < reader.bytes.count,
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(reader.bytes[reader.position])
            {
                reader.position += 1
            }
            return reader.position - first
        }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        let integerStart = position
        guard digits(&self) > 0 else { throw problem("malformed number") }
        if bytes[integerStart] == UInt8(ascii: "0"), position - integerStart > 1 {
            throw problem("malformed number")
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw problem("malformed number") }
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard digits(&self) > 0 else { throw problem("malformed number") }
        }
        guard let value = Double(String(decoding: bytes[start..<position], as: UTF8.self)), value.isFinite else {
            throw problem("number out of range")
        }
        return .number(value)
    }

    private mutating func string() throws(HeketiWireError) -> String {
        position += 1  // opening quote
        var runStart = position
        // Runs without escapes are copied as bytes (validated as UTF-8 by String(decoding:)).
        var text = ""
        func flushRun(_ reader: JSONReader, upTo end: Int) {
            if end > runStart {
                text += String(decoding: reader.bytes[runStart..<end], as: UTF8.self)
            }
        }
        while true {
            guard position < bytes.count else { throw problem("unterminated string") }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                flushRun(self, upTo: position)
                position += 1
                return text
            }
            guard byte >= 0x20 else { throw problem("control character in a string") }
            guard byte == UInt8(ascii: "\\") else {
                position += 1
                continue
            }
            flushRun(self, upTo: position)
            position += 1
            guard position < bytes.count else { throw problem("unterminated string") }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "\""): text += "\""
            case UInt8(ascii: "\\"): text += "\\"
            case UInt8(ascii: "/"): text += "/"
            case UInt8(ascii: "b"): text += "\u{8}"
            case UInt8(ascii: "f"): text += "\u{C}"
            case UInt8(ascii: "n"): text += "\n"
            case UInt8(ascii: "r"): text += "\r"
            case UInt8(ascii: "t"): text += "\t"
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                    bytes[position + 1] == UInt8(ascii: "u")
                {
                    position += 2
                    let low = try hex4()
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        // Not a pair: the high half alone is invalid (U+FFFD, as Go does), and the
                        // next escape is read again on its own.
                        position -= 6
                    }
                }
                // A lone surrogate half is no scalar: U+FFFD.
                text.unicodeScalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: throw problem("unknown escape")
            }
            runStart = position
        }
    }

    private mutating func hex4() throws(HeketiWireError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw problem("short \\u escape") }
        var code: UInt32 = 0
        for byte in bytes[position..<position + 4] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw problem("bad \\u escape")
            }
            code = code << 4 | UInt32(digit)
        }
        position += 4
        return code
    }
}
