/// Base64url without padding (RFC 4648 §5), as JWTs use it. Tiny on purpose: a JWT needs the
/// encoder only; the decoder exists so tests can read back what the client sent.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Encodes `bytes`, no `=` padding.
    static func encode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var output: [UInt8] = []
        append(Array(bytes), to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends the encoding of `input` to `output` (no padding): what a JWT is built from, with
    /// no intermediate strings.
    static func append(_ input: [UInt8], to output: inout [UInt8]) {
        output.reserveCapacity(output.count + (input.count * 4 + 2) / 3)
        alphabet.withUnsafeBufferPointer { alphabet in
            /// The first `count` (2 to 4) sextets of a 24-bit chunk.
            func put(_ chunk: UInt32, _ count: Int) {
                output.append(alphabet[Int(chunk >> 18 & 63)])
                output.append(alphabet[Int(chunk >> 12 & 63)])
                if count > 2 { output.append(alphabet[Int(chunk >> 6 & 63)]) }
                if count > 3 { output.append(alphabet[Int(chunk & 63)]) }
            }
            var index = 0
            while index + 3 <= input.count {
                put(UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2]), 4)
                index += 3
            }
            switch input.count - index {
            case 1: put(UInt32(input[index]) << 16, 2)
            case 2: put(UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8, 3)
            default: break
            }
        }
    }

    /// Decodes unpadded base64url; nil for any character outside the alphabet, for padding, or
    /// for an impossible length.
    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "_"): values.append(63)
            default: return nil
            }
        }
        if values.count % 4 == 1 { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(values.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for value in values {
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        return output
    }
}
