import CSICore
import FoundationEssentials
import Logging
import Synchronization

@testable import Heketi

/// A scripted HTTPTransport: records every request and answers with `respond`, which sees the
/// request and its 0-based index. It does not fake the client: it plays Heketi's part.
final class ScriptedTransport: HTTPTransport {
    typealias Responder = @Sendable (HTTPRequest, Int) -> Result<HTTPResponse, HTTPTransportError>

    private let respond: Responder
    private let log = Mutex<[HTTPRequest]>([])

    init(_ respond: @escaping Responder) {
        self.respond = respond
    }

    var requests: [HTTPRequest] { log.withLock { $0 } }

    /// "METHOD path" of every request, in order.
    var summary: [String] { requests.map { "\($0.method) \(Self.path(of: $0.url))" } }

    func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        let index = log.withLock { log in
            log.append(request)
            return log.count - 1
        }
        return try respond(request, index).get()
    }

    static func path(of url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return "/" }
        return String(rest[slash...])
    }
}

/// Canned Heketi answers.
enum Answer {
    static func accepted(_ queueID: String) -> Result<HTTPResponse, HTTPTransportError> {
        .success(HTTPResponse(status: 202, headers: ["location": "/queue/\(queueID)"]))
    }
    static let pending = Result<HTTPResponse, HTTPTransportError>.success(
        HTTPResponse(status: 200, headers: ["x-pending": "true"]))
    static func seeOther(_ path: String) -> Result<HTTPResponse, HTTPTransportError> {
        .success(HTTPResponse(status: 303, headers: ["location": path]))
    }
    static let noContent = Result<HTTPResponse, HTTPTransportError>.success(HTTPResponse(status: 204))
    static func text(_ status: Int, _ text: String) -> Result<HTTPResponse, HTTPTransportError> {
        .success(HTTPResponse(status: status, headers: ["content-type": "text/plain"], body: Array(text.utf8)))
    }
    static func json(_ text: String) -> Result<HTTPResponse, HTTPTransportError> {
        .success(HTTPResponse(status: 200, headers: ["content-type": "application/json"], body: Array(text.utf8)))
    }
    static let busy = text(429, "Server busy. Retry operation later.")

    static func volume(id: String, name: String = "pvc-1", size: Int = 1) -> Result<HTTPResponse, HTTPTransportError> {
        json(
            #"{"size":\#(size),"name":"\#(name)","id":"\#(id)","cluster":"c1","durability":{"type":"replicate","replicate":{"replica":3},"disperse":{}},"glustervolumeoptions":["",""],"mount":{"glusterfs":{"hosts":["h1","h2","h3"],"device":"h1:\#(name)","options":{"backup-volfile-servers":"h2,h3"}}},"bricks":[{"id":"b1"},{"id":"b2"},{"id":"b3"}]}"#
        )
    }
}

/// Time that moves only when the client sleeps, so tests never wait. Records every sleep.
final class ManualRuntime: Sendable {
    private struct State {
        var elapsed: Duration = .zero
        var sleeps: [Duration] = []
        var unixCalls: Int64 = 0
    }

    private let start = ContinuousClock.now
    private let state = Mutex(State())
    private let randomValue: Double

    /// The first token's iat; every later token gets the next second, so each minted token is
    /// distinguishable.
    static let baseUnixTime: Int64 = 1_700_000_000

    init(random: Double = 0.5) {
        self.randomValue = random
    }

    var sleeps: [Duration] { state.withLock { $0.sleeps } }
    var elapsed: Duration { state.withLock { $0.elapsed } }

    var runtime: HeketiClient.Runtime {
        HeketiClient.Runtime(
            now: { [self] in start + state.withLock { $0.elapsed } },
            sleep: { [self] duration in
                try Task.checkCancellation()
                state.withLock {
                    $0.elapsed += duration
                    $0.sleeps.append(duration)
                }
                await Task.yield()
            },
            unixTime: { [self] in
                state.withLock { state in
                    defer { state.unixCalls += 1 }
                    return Self.baseUnixTime + state.unixCalls
                }
            },
            random: { [randomValue] in randomValue })
    }
}

/// Collects every log line (message and metadata rendered as text) at every level.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    // @unchecked: `lines` is a Mutex-protected box shared by copies of this handler (swift-log
    // copies handlers when metadata is set); metadata and logLevel are value state per copy.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        var joined: String { all.joined(separator: "\n") }
    }

    let sink: Lines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    init(sink: Lines) {
        self.sink = sink
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.lines.withLock { $0.append("\(event.level) \(event.message) \(rendered)") }
    }

    static func logger() -> (Logger, Lines) {
        let lines = Lines()
        var logger = Logger(label: "heketi-test") { _ in CapturingLogHandler(sink: lines) }
        logger.logLevel = .trace
        return (logger, lines)
    }
}

/// The parts of a JWT a test checks.
struct DecodedToken: Decodable, Equatable {
    var iss: String
    var iat: Int64
    var exp: Int64
    var qsh: String

    /// Decodes `Bearer <jwt>` without checking the signature (see `signatureMatches`).
    init?(authorization: String?) {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return nil }
        let parts = authorization.dropFirst("Bearer ".count).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let claims = Base64URL.decode(String(parts[1])),
            let decoded = try? JSONDecoder().decode(DecodedToken.self, from: Data(claims))
        else { return nil }
        self = decoded
    }
}

extension HTTPRequest {
    var authorization: String? { headers.first(where: { $0.name.lowercased() == "authorization" })?.value }
}

/// A fast client configuration for scripted tests: the production back-off shape, with a tiny
/// limiter so concurrency tests can see it.
func testClient(
    _ transport: ScriptedTransport, runtime: ManualRuntime, logger: Logger? = nil,
    endpoint: HeketiEndpoint = HeketiEndpoint(url: "http://heketi.test:8080", user: "admin", key: "sentinel-KEY-42"),
    configuration: HeketiClient.Configuration = HeketiClient.Configuration()
) -> HeketiClient {
    HeketiClient(
        endpoint: endpoint, transport: transport, logger: logger ?? Logger(label: "heketi-test"),
        configuration: configuration, runtime: runtime.runtime)
}

extension ScriptedTransport {
    /// A transport answering by "METHOD path", with how many times that key was asked before
    /// (0 for the first). Unknown routes answer 404 "Invalid path or request".
    static func routes(
        _ answer: @escaping @Sendable (_ route: String, _ seen: Int) -> Result<HTTPResponse, HTTPTransportError>?
    ) -> ScriptedTransport {
        let counts = Mutex<[String: Int]>([:])
        return ScriptedTransport { request, _ in
            let route = "\(request.method) \(ScriptedTransport.path(of: request.url))"
            let seen = counts.withLock { counts in
                defer { counts[route, default: 0] += 1 }
                return counts[route, default: 0]
            }
            return answer(route, seen) ?? Answer.text(404, "Invalid path or request")
        }
    }
}
