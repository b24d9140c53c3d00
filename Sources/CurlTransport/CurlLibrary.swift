import CCurlShim

/// libcurl itself, which the shim loads with `dlopen` the first time a transport is made rather
/// than linking it: a process that never talks to Heketi (the node plugin, a controller before its
/// first request) does not map libcurl and its ~27 dependencies (bench/README.md, identity-probe).
enum CurlLibrary {
    /// The soname loaded (Debian package libcurl4).
    static let name = CCURL_LIBRARY_NAME

    /// Loads and initialises libcurl once per process; later calls return the first outcome. nil
    /// when transfers can be made; otherwise why not, saying what is missing and what to install
    /// (every request then fails with `HTTPTransportError.failed` of this text).
    static func initialise() -> String? {
        var message: UnsafePointer<CChar>?
        let code = ccurl_global_init(&message)
        guard code != CURLE_OK else { return nil }
        return message.map { String(cString: $0) } ?? "libcurl failed to initialise"
    }

    /// What `initialise()` would answer if libcurl were the library `name`, or nil when `name`
    /// loads and has every function the shim calls. Loads it into a table of its own (the
    /// process's libcurl is not touched), so tests can try a library that does not exist.
    static func loadFailure(of name: String) -> String? {
        var message = [CChar](repeating: 0, count: 512)
        let result = message.withUnsafeMutableBufferPointer { ccurl_library_probe(name, $0.baseAddress, $0.count) }
        guard result != 0 else { return nil }
        return String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
