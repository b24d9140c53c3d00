/// One HTTP request, as the Heketi client sends it. Header values may hold credentials (the
/// Authorization header): a transport never logs them.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    /// Absolute URL: scheme, host, port, path and query.
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Connect timeout and total timeout for this one exchange.
    public var connectTimeout: Duration
    public var timeout: Duration

    public init(
        method: String, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        connectTimeout: Duration = .seconds(5), timeout: Duration = .seconds(30)
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.timeout = timeout
    }

    /// `method` upper-cased, as HTTP and Heketi's qsh claim want it. The driver's methods are
    /// upper-case literals already, so Unicode case mapping runs only for anything else (this is
    /// on every Heketi request).
    public static func canonicalMethod(_ method: String) -> String {
        method.utf8.contains(where: { $0 >= 0x61 && $0 <= 0x7A || $0 >= 0x80 }) ? method.uppercased() : method
    }

    public static func == (lhs: HTTPRequest, rhs: HTTPRequest) -> Bool {
        lhs.method == rhs.method && lhs.url == rhs.url && lhs.body == rhs.body
            && lhs.headers.map(\.name) == rhs.headers.map(\.name)
            && lhs.headers.map(\.value) == rhs.headers.map(\.value)
            && lhs.connectTimeout == rhs.connectTimeout && lhs.timeout == rhs.timeout
    }
}

/// The answer to an `HTTPRequest`. Redirects are never followed by the transport: the caller
/// sees the 3xx and its Location (Heketi's async queue reports results as 303).
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Why an exchange produced no HTTP response at all.
public enum HTTPTransportError: Error, Sendable, Equatable {
    /// Nothing accepted the connection (refused, unreachable, DNS failure).
    case cannotConnect(String)
    /// The connect or total timeout passed.
    case timedOut(String)
    /// TLS failed (certificate not trusted, handshake error). Verification is never skipped.
    case tls(String)
    /// Anything else the transport reports.
    case failed(String)
    /// The transport cannot send anything in this process (its HTTP library is missing or
    /// broken): a problem of the driver's installation, not of the server.
    case unusable(String)
}

/// Sends HTTP requests. The real one is libcurl-based (target CurlTransport); tests use fakes.
/// Implementations must not block Swift's cooperative thread pool.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse
}

/// A transport that can also hand a response body over as it arrives, for answers that last as
/// long as the connection (a Kubernetes watch).
public protocol HTTPStreamingTransport: HTTPTransport {
    /// Sends `request` and passes each piece of the body to `onData` with the response's status;
    /// `onData` returning false stops the exchange. Returns the status and headers (the body is
    /// empty) when the server ends the response or `onData` stopped it.
    func stream(
        _ request: HTTPRequest, onData: @escaping @Sendable (_ status: Int, _ bytes: [UInt8]) -> Bool
    ) async throws(HTTPTransportError) -> HTTPResponse
}
