/// A Kubernetes resource quantity (`10Gi`, `5G`, `1e9`), read only far enough to compare a
/// claim's request with a PV's capacity.
enum Quantity {
    private static let binary: [String: Double] = [
        "Ki": 0x1p10, "Mi": 0x1p20, "Gi": 0x1p30, "Ti": 0x1p40, "Pi": 0x1p50, "Ei": 0x1p60,
    ]
    private static let decimal: [String: Double] = [
        "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    ]

    /// The value of `text` (in bytes, for storage), or nil if it is not a quantity. Exact for the
    /// whole numbers of bytes storage quantities are, up to 2^53.
    static func value(_ text: String) -> Double? {
        var rest = Substring(text)
        var sign = 1.0
        if let first = rest.first, first == "+" || first == "-" {
            sign = first == "-" ? -1 : 1
            rest = rest.dropFirst()
        }
        let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let suffix = String(rest.dropFirst(number.count))
        guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1,
            let mantissa = Double(number.hasPrefix(".") ? "0" + number : String(number))
        else { return nil }
        if let scale = binary[suffix] ?? decimal[suffix] {
            return sign * mantissa * scale
        }
        // An exponent: e or E, an optional sign, digits.
        guard let marker = suffix.first, marker == "e" || marker == "E" else { return nil }
        var digits = suffix.dropFirst()
        var exponentSign = 1
        if let first = digits.first, first == "+" || first == "-" {
            exponentSign = first == "-" ? -1 : 1
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let exponent = Int(digits),
            exponent <= 308
        else { return nil }
        var scale = 1.0
        for _ in 0..<exponent { scale *= 10 }
        return exponentSign < 0 ? sign * mantissa / scale : sign * mantissa * scale
    }
}
