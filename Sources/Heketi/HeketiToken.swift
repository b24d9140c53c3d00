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
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        let claims =
            #"{"iss":"# + Self.jsonString(issuer) + #","iat":\#(issuedAt),"exp":\#(issuedAt + lifetime),"qsh":""#
            + Self.qsh(method: method, path: path) + #""}"#
        let signingInput = Base64URL.encode(header.utf8) + "." + Base64URL.encode(claims.utf8)
        let mac = SHA256.hmac(key: Array(key.utf8), message: Array(signingInput.utf8))
        compact = signingInput + "." + Base64URL.encode(mac)
    }

    /// Lowercase hex SHA-256 of `METHOD&PATH`.
    static func qsh(method: String, path: String) -> String {
        hex(SHA256.hash(Array((method.uppercased() + "&" + path).utf8)))
    }

    static func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// `text` as a JSON string literal (the issuer comes from configuration, so escape it).
    static func jsonString(_ text: String) -> String { JSONString.quoted(text) }
}
