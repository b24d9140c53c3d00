/// The parts of Heketi's base URL the client needs: where to send, and which path goes into the
/// token's qsh (the path exactly as sent, see heketi-api.md).
struct HeketiURL: Equatable {
    /// `scheme://authority`, e.g. `https://heketi.storage.svc:8080`.
    let origin: String
    /// A path prefix from the base URL ("" normally; "/heketi" behind a path-routing proxy).
    let basePath: String

    /// Nil unless `url` is an absolute http or https URL with a host and without query or
    /// fragment. One trailing slash is tolerated.
    init?(_ url: String) {
        let lower = url.lowercased()
        let schemeLength: Int
        if lower.hasPrefix("http://") {
            schemeLength = 7
        } else if lower.hasPrefix("https://") {
            schemeLength = 8
        } else {
            return nil
        }
        if url.contains("?") || url.contains("#") || url.unicodeScalars.contains(where: { $0.value <= 0x20 }) {
            return nil
        }
        let rest = url.dropFirst(schemeLength)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        origin = String(url.prefix(schemeLength)).lowercased() + authority
        basePath = path
    }

    /// The URL and the qsh path (the path as sent, query excluded) for an API path such as
    /// `/volumes` or `/queue/<id>`.
    func target(apiPath: String) -> (url: String, path: String) {
        let full = basePath + apiPath
        let path = full.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
        return (origin + full, path.map(String.init) ?? full)
    }

    /// The API path for a `Location` Heketi sent (an absolute path, or an absolute URL on this
    /// same origin), without `basePath`. Nil for anything else: a token is never sent to another
    /// host.
    ///
    /// Heketi does not know about a path-routing proxy in front of it, so its Locations normally
    /// lack `basePath`; one that has it (a rewriting proxy) works too.
    func apiPath(ofLocation location: String) -> String? {
        let location = location.trimmingSpaces
        let path: String
        if location.hasPrefix("/") && !location.hasPrefix("//") {
            path = location
        } else if location.lowercased().hasPrefix(origin.lowercased() + "/") {
            path = String(location.dropFirst(origin.count))
        } else {
            return nil
        }
        if !basePath.isEmpty && path.hasPrefix(basePath + "/") { return String(path.dropFirst(basePath.count)) }
        return path
    }

    /// Whether `id` can be a Heketi object ID. Heketi's routes accept only hex IDs (anything
    /// else is 404 "Invalid path or request"), and checking here also keeps `/`, `..` or `?`
    /// in an ID from changing the path the token was minted for.
    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128
            && id.utf8.allSatisfy { byte in
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
            }
    }
}

extension HeketiEndpoint {
    /// What is wrong with `url` for a Heketi client, or nil when it is usable. Lets the
    /// controller reject a bad `resturl` while validating parameters.
    public var urlProblem: String? {
        HeketiURL(url) == nil
            ? "resturl must be an http:// or https:// URL with a host and no query, e.g. http://heketi:8080"
            : nil
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
