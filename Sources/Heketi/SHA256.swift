/// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), just enough to mint Heketi's JWTs.
///
/// Why not swift-crypto: on Linux it imports all of Foundation, which links Foundation,
/// FoundationInternationalization and ICU into the driver — megabytes of resident memory and
/// start-up time in every node-plugin pod, for one hash over a few hundred bytes per request.
/// Only signing happens here (no verification of untrusted input, no secret comparison), and the
/// implementation is checked against the NIST and RFC 4231 test vectors.
enum SHA256 {
    static let digestLength = 32
    private static let blockLength = 64

    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    static func hash(_ message: [UInt8]) -> [UInt8] {
        var context = Context()
        message.withUnsafeBytes { context.update($0) }
        return context.finish()
    }

    /// HMAC-SHA256: keys longer than a block are hashed first, shorter ones zero-padded.
    static func hmac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var pad = key.count > blockLength ? hash(key) : key
        pad.append(contentsOf: repeatElement(0, count: blockLength - pad.count))
        for index in pad.indices { pad[index] ^= 0x36 }
        var inner = Context()
        pad.withUnsafeBytes { inner.update($0) }
        message.withUnsafeBytes { inner.update($0) }
        let innerDigest = inner.finish()
        for index in pad.indices { pad[index] ^= 0x36 ^ 0x5c }
        var outer = Context()
        pad.withUnsafeBytes { outer.update($0) }
        innerDigest.withUnsafeBytes { outer.update($0) }
        return outer.finish()
    }

    /// A hash in progress. Whole blocks are compressed straight from the caller's bytes; only a
    /// partial block is copied. (A token costs three hashes per Heketi request, so the hot path
    /// allocates nothing per block.)
    private struct Context {
        private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (
            0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19
        )
        /// Bytes of an incomplete block (fewer than 64).
        private var pending: [UInt8] = []
        /// Bytes fed so far.
        private var length: UInt64 = 0

        mutating func update(_ bytes: UnsafeRawBufferPointer) {
            length &+= UInt64(bytes.count)
            var offset = 0
            if !pending.isEmpty {
                let taken = min(blockLength - pending.count, bytes.count)
                pending.append(contentsOf: bytes[0..<taken])
                offset = taken
                guard pending.count == blockLength else { return }
                pending.withUnsafeBytes { compress($0) }
                pending.removeAll(keepingCapacity: true)
            }
            while bytes.count - offset >= blockLength {
                compress(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + blockLength]))
                offset += blockLength
            }
            if offset < bytes.count {
                pending.reserveCapacity(blockLength)
                pending.append(contentsOf: bytes[offset...])
            }
        }

        /// Padding (a 1 bit, zeros to 56 mod 64 bytes, the message length in bits, big-endian),
        /// then the state as 32 big-endian bytes.
        mutating func finish() -> [UInt8] {
            let bitLength = length &* 8
            var trailer: [UInt8] = [0x80]
            trailer.append(contentsOf: repeatElement(0, count: (blockLength + 55 - pending.count) % blockLength))
            for shift in stride(from: 56, through: 0, by: -8) {
                trailer.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
            }
            trailer.withUnsafeBytes { update($0) }
            let words = [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7]
            var digest = [UInt8](repeating: 0, count: digestLength)
            for (index, word) in words.enumerated() {
                for byte in 0..<4 {
                    digest[index * 4 + byte] = UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32(byte)))
                }
            }
            return digest
        }

        /// One 64-byte block into the state (FIPS 180-4, 6.2.2).
        private mutating func compress(_ block: UnsafeRawBufferPointer) {
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
                for index in 0..<16 {
                    schedule[index] = UInt32(
                        bigEndian: block.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
                }
                for index in 16..<64 {
                    let w15 = schedule[index - 15]
                    let w2 = schedule[index - 2]
                    let s0 = rotate(w15, 7) ^ rotate(w15, 18) ^ (w15 >> 3)
                    let s1 = rotate(w2, 17) ^ rotate(w2, 19) ^ (w2 >> 10)
                    schedule[index] = schedule[index - 16] &+ s0 &+ schedule[index - 7] &+ s1
                }
                roundConstants.withUnsafeBufferPointer { constants in
                    var (a, b, c, d, e, f, g, h) = state
                    for index in 0..<64 {
                        let s1 = rotate(e, 6) ^ rotate(e, 11) ^ rotate(e, 25)
                        let choice = (e & f) ^ (~e & g)
                        let temp1 = h &+ s1 &+ choice &+ constants[index] &+ schedule[index]
                        let s0 = rotate(a, 2) ^ rotate(a, 13) ^ rotate(a, 22)
                        let majority = (a & b) ^ (a & c) ^ (b & c)
                        let temp2 = s0 &+ majority
                        (h, g, f, e, d, c, b, a) = (g, f, e, d &+ temp1, c, b, a, temp1 &+ temp2)
                    }
                    state = (
                        state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e, state.5 &+ f,
                        state.6 &+ g, state.7 &+ h
                    )
                }
            }
        }
    }

    private static func rotate(_ value: UInt32, _ count: UInt32) -> UInt32 {
        (value >> count) | (value << (32 - count))
    }
}
