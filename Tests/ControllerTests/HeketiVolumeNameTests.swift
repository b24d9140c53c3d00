import Testing

@testable import Controller

@Suite("Heketi volume names")
struct HeketiVolumeNameTests {
    /// The shortening as it was first written, one character at a time from the longest part:
    /// quadratic, but what every existing volume's name was computed with. The hash (the last 10
    /// characters) is the same either way.
    static func reference(_ csiName: String, prefix: String?, namespace: String?, pvc: String?, hash: String) -> String
    {
        func sanitized(_ text: String) -> String {
            String(
                text.unicodeScalars.map { scalar -> Character in
                    let byte = scalar.value
                    let allowed =
                        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                        || byte == 0x2D
                    return allowed ? Character(scalar) : "-"
                })
        }
        var parts: [String]
        if let prefix {
            parts = [prefix]
            if let namespace, let pvc, !namespace.isEmpty, !pvc.isEmpty {
                parts += [sanitized(namespace), sanitized(pvc)]
            }
        } else {
            parts = [sanitized(csiName)]
        }
        let budget = HeketiVolumeName.maximumLength - hash.utf8.count - parts.count
        let shortenable = prefix == nil ? Array(parts.indices) : Array(parts.indices.dropFirst())
        while parts.reduce(0, { $0 + $1.utf8.count }) > budget {
            guard let longest = shortenable.max(by: { parts[$0].count < parts[$1].count }), parts[longest].count > 1
            else { break }
            parts[longest].removeLast()
        }
        return (parts + [hash]).joined(separator: "_")
    }

    @Test("cutting long parts at once gives the names that one character at a time gave")
    func sameNamesAsBefore() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcXYZ019-_.é/ ")
        func random(_ length: Int) -> String {
            String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
        }
        let shapes: [(String?, Bool)] = [(nil, false), ("dept", false), ("dept", true)]
        for _ in 0..<300 {
            let csiName = random(Int.random(in: 1...200, using: &generator))
            let namespace = random(Int.random(in: 0...120, using: &generator))
            let pvc = random(Int.random(in: 0...120, using: &generator))
            for (prefix, withMetadata) in shapes {
                let (ns, claim) = withMetadata ? (namespace, pvc) : (nil, nil)
                let name = HeketiVolumeName(csiName: csiName, prefix: prefix, pvcNamespace: ns, pvcName: claim).value
                let expected = Self.reference(
                    csiName, prefix: prefix, namespace: ns, pvc: claim, hash: String(name.suffix(10)))
                #expect(name == expected, "\(csiName) \(String(describing: prefix)) \(String(describing: ns))")
            }
        }
    }

    @Test("a 100,000-byte name is shortened like any other, at once")
    func longName() {
        let long = String(repeating: "x", count: 100_000)
        let name = HeketiVolumeName(
            csiName: long, prefix: "p", pvcNamespace: String(repeating: "n", count: 100_000),
            pvcName: String(repeating: "c", count: 100_000)
        ).value
        #expect(name.utf8.count <= HeketiVolumeName.maximumLength)
        #expect(name.hasPrefix("p_nnnnnnnnnnnnnnnnnnnnnn"))
        #expect(HeketiVolumeName(csiName: long, prefix: nil, pvcNamespace: nil, pvcName: nil).value.utf8.count <= 60)
    }
}
