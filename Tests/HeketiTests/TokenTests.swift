import Testing

@testable import Heketi

// Known-answer vectors computed independently with Python's base64, hashlib and hmac:
//   qsh = hashlib.sha256(b"GET&/volumes/5c6f93f5ba6e4f51a4a87f4b3b8dd275").hexdigest()
//   signing input = b64url('{"alg":"HS256","typ":"JWT"}') + "." +
//                   b64url('{"iss":"admin","iat":1700000000,"exp":1700000300,"qsh":"<qsh>"}')
//   signature = b64url(hmac.new(b"My Secret", signing_input, hashlib.sha256).digest())
@Suite struct TokenTests {
    @Test(arguments: [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ])
    func base64urlMatchesRFC4648Vectors(input: String, expected: String) {
        #expect(Base64URL.encode(input.utf8) == expected)
        #expect(Base64URL.decode(expected) == Array(input.utf8))
    }

    @Test func base64urlUsesTheURLAlphabetWithoutPadding() {
        #expect(Base64URL.encode([0xFB, 0xFF, 0xFE]) == "-__-")
        #expect(Base64URL.decode("-__-") == [0xFB, 0xFF, 0xFE])
        #expect(Base64URL.decode("Zg==") == nil)
        #expect(Base64URL.decode("+/") == nil)
        #expect(Base64URL.decode("Z") == nil)
    }

    @Test func base64urlRoundTripsEveryLength() {
        for length in 0..<64 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(Base64URL.encode(bytes)) == bytes)
        }
    }

    @Test func qshIsHexSHA256OfMethodAndPath() {
        #expect(
            HeketiToken.qsh(method: "GET", path: "/volumes/5c6f93f5ba6e4f51a4a87f4b3b8dd275")
                == "c7825bff48ebcf9c1c1962ed76cc7910143df0343f4a18bc53b996892a3b690e")
        #expect(
            HeketiToken.qsh(method: "post", path: "/volumes")
                == "3a9831a9908924e3f78fe948585f41849e92724522f5153cb91aff7f8ea48eac")
    }

    @Test func tokenMatchesTheKnownAnswer() {
        let token = HeketiToken(
            method: "GET", path: "/volumes/5c6f93f5ba6e4f51a4a87f4b3b8dd275", issuer: "admin", key: "My Secret",
            issuedAt: 1_700_000_000, lifetime: 300)
        #expect(
            token.compact
                == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
                + ".eyJpc3MiOiJhZG1pbiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwMzAwLCJxc2giOiJjNzgyNWJmZjQ4ZWJjZjljMWMx"
                + "OTYyZWQ3NmNjNzkxMDE0M2RmMDM0M2Y0YTE4YmM1M2I5OTY4OTJhM2I2OTBlIn0"
                + ".RdGT62sVYHm0k5oQ_bxm5HI_huguYiGVWxizKhpD96c")
    }

    @Test func aDifferentKeyPathOrTimeGivesADifferentToken() {
        func token(path: String = "/volumes", key: String = "k", iat: Int64 = 1) -> String {
            HeketiToken(method: "GET", path: path, issuer: "admin", key: key, issuedAt: iat, lifetime: 60).compact
        }
        #expect(token() != token(key: "k2"))
        #expect(token() != token(path: "/volumes/"))
        #expect(token() != token(iat: 2))
    }

    @Test func issuerIsEscapedAsJSON() {
        #expect(HeketiToken.jsonString(#"a"b\c"#) == #""a\"b\\c""#)
        #expect(HeketiToken.jsonString("x\u{1}y\n") == #""x\u0001y\n""#)
        let token = HeketiToken(
            method: "GET", path: "/volumes", issuer: #"ad"min"#, key: "k", issuedAt: 10, lifetime: 300)
        let decoded = DecodedToken(authorization: "Bearer " + token.compact)
        #expect(decoded?.iss == #"ad"min"#)
        #expect(decoded?.exp == 310)
    }
}
