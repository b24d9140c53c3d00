import CSICore

/// The JWT Heketi expects on every request (see heketi-api.md, "Authentication").
///
/// HS256 over `{"alg":"HS256","typ":"JWT"}` and the claims `iss` (the user: `admin` or `user`),
/// `iat`, `exp` and `qsh` — the lowercase hex SHA-256 of `METHOD&PATH`, PATH being the URL path
/// exactly as sent. The qsh binds a token to one method and path, so a token is minted for every
/// single request, including each queue poll and each redirect target.
///
/// A token is a credential for its lifetime: it is put in the Authorization header and nowhere
/// else — never in a log line, an error or a process argument.
struct HeketiToken {
    /// The signed token, `header.claims.signature`.
    let compact: String

    /// - Parameters:
    ///   - method: the HTTP method; upper-cased for the qsh.
    ///   - path: the URL path only (no scheme, host, query), exactly as sent.
    ///   - issuer: the `iss` claim (`admin` or `user`), which selects Heketi's key.
    ///   - key: the HMAC key, as configured on Heketi.
    ///   - issuedAt: seconds since the Unix epoch.
    ///   - lifetime: `exp - iat` in seconds.
    init(method: String, path: String, issuer: String, key: String, issuedAt: Int64, lifetime: Int64) {
        // Built as bytes: one token per Heketi request, and string concatenation cost several
        // times the hashing.
        var claims: [UInt8] = []
        claims.reserveCapacity(160)
        claims.append(contentsOf: #"{"iss":"#.utf8)
        claims.append(contentsOf: Self.jsonString(issuer).utf8)
        claims.append(contentsOf: #","iat":"#.utf8)
        claims.append(contentsOf: String(issuedAt).utf8)
        claims.append(contentsOf: #","exp":"#.utf8)
        claims.append(contentsOf: String(issuedAt + lifetime).utf8)
        claims.append(contentsOf: #","qsh":""#.utf8)
        Self.appendHex(SHA256.hash(Self.qshInput(method: method, path: path)), to: &claims)
        claims.append(contentsOf: #""}"#.utf8)

        var token = Self.encodedHeader
        token.reserveCapacity(token.count + 1 + claims.count * 4 / 3 + 2 + 1 + 43)
        token.append(UInt8(ascii: "."))
        Base64URL.append(claims, to: &token)
        let mac = SHA256.hmac(key: Array(key.utf8), message: token)
        token.append(UInt8(ascii: "."))
        Base64URL.append(mac, to: &token)
        compact = String(decoding: token, as: UTF8.self)
    }

    /// base64url of `{"alg":"HS256","typ":"JWT"}`, the same for every token.
    private static let encodedHeader: [UInt8] = {
        var encoded: [UInt8] = []
        Base64URL.append(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8), to: &encoded)
        return encoded
    }()

    /// Lowercase hex SHA-256 of `METHOD&PATH`.
    static func qsh(method: String, path: String) -> String {
        hex(SHA256.hash(qshInput(method: method, path: path)))
    }

    /// `METHOD&PATH`, the method upper-cased.
    private static func qshInput(method: String, path: String) -> [UInt8] {
        Array((HTTPRequest.canonicalMethod(method) + "&" + path).utf8)
    }

    private static func appendHex(_ bytes: [UInt8], to output: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        digits.withUTF8Buffer { digits in
            for byte in bytes {
                output.append(digits[Int(byte >> 4)])
                output.append(digits[Int(byte & 0x0F)])
            }
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        appendHex(bytes, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    /// `text` as a JSON string literal (the issuer comes from configuration, so escape it).
    static func jsonString(_ text: String) -> String { JSONString.quoted(text) }
}
