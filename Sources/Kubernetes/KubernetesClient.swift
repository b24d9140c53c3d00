import CSICore
import Heketi
import Synchronization

/// What went wrong talking to the Kubernetes API.
public enum KubernetesError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No HTTP answer (connect, TLS, timeout) or the token could not be read.
    case transport(String)
    /// The API answered with an error status; `message` is its Status message, if any.
    case status(code: Int, message: String)
    /// An answer that is not what the API sends.
    case malformed(String)

    public var description: String {
        switch self {
        case .transport(let text): "no answer from the Kubernetes API: \(text)"
        case .status(let code, let message): "the Kubernetes API answered \(code): \(message)"
        case .malformed(let text): "unexpected answer from the Kubernetes API: \(text)"
        }
    }
}

/// The parts of a PersistentVolume the GID annotation needs.
public struct PersistentVolume: Sendable, Equatable {
    public static let gidAnnotation = "pv.beta.kubernetes.io/gid"

    public var name: String
    public var resourceVersion: String
    /// `spec.csi.driver`, nil for a PV of another kind.
    public var csiDriver: String?
    /// `spec.csi.volumeAttributes.gid` when it is a GID (decimal, at most 4294967294).
    public var gid: String?
    /// The value of `pv.beta.kubernetes.io/gid`, if any.
    public var annotatedGID: String?

    public init(
        name: String, resourceVersion: String = "", csiDriver: String? = nil, gid: String? = nil,
        annotatedGID: String? = nil
    ) {
        self.name = name
        self.resourceVersion = resourceVersion
        self.csiDriver = csiDriver
        self.gid = gid
        self.annotatedGID = annotatedGID
    }

    /// Reads a PersistentVolume object; nil when it has no name.
    init?(_ value: JSONValue) {
        let metadata = value["metadata"]
        guard case .string(let name)? = metadata?["name"], !name.isEmpty else { return nil }
        self.name = name
        resourceVersion = metadata?["resourceVersion"]?.stringValue ?? ""
        annotatedGID = metadata?["annotations"]?[Self.gidAnnotation]?.stringValue
        let csi = value["spec"]?["csi"]
        csiDriver = csi?["driver"]?.stringValue
        let gid = csi?["volumeAttributes"]?["gid"]?.stringValue
        self.gid = gid.flatMap { text in UInt32(text).map { $0 < UInt32.max && String($0) == text } == true ? text : nil
        }
    }

    /// The GID to annotate this PV with for `driver`, or nil when it needs nothing.
    public func missingGID(for driver: String) -> String? {
        guard csiDriver == driver, let gid, annotatedGID != gid else { return nil }
        return gid
    }
}

/// One event of a watch.
public enum WatchEvent: Sendable, Equatable {
    case added(PersistentVolume)
    case modified(PersistentVolume)
    case deleted(PersistentVolume)
    /// Only a newer resourceVersion to resume from.
    case bookmark(resourceVersion: String)
    /// 410 Gone: the resourceVersion is too old; list again.
    case expired
    /// Any other ERROR event.
    case error(code: Int, message: String)
}

/// PersistentVolumes through the Kubernetes API: list (paged), watch (streamed), and a merge
/// patch of one annotation. Over the driver's libcurl transport and JSON reader; every request
/// carries the current service account token.
public struct KubernetesClient: Sendable {
    public let config: InClusterConfig
    let transport: any HTTPStreamingTransport
    let userAgent: String

    public init(config: InClusterConfig, transport: any HTTPStreamingTransport, userAgent: String) {
        self.config = config
        self.transport = transport
        self.userAgent = userAgent
    }

    /// One page of PVs, the list's resourceVersion, and the token of the next page ("" at the end).
    public func listPersistentVolumes(
        limit: Int, continueToken: String
    ) async throws(KubernetesError) -> (volumes: [PersistentVolume], resourceVersion: String, continueToken: String) {
        var path = "/api/v1/persistentvolumes?limit=\(limit)"
        if !continueToken.isEmpty { path += "&continue=" + Self.percentEncoded(continueToken) }
        let response = try await send(request("GET", path))
        try Self.check(response)
        let list = try Self.json(response.body)
        guard case .array(let items)? = list["items"] else { throw .malformed("a list without items") }
        return (
            items.compactMap(PersistentVolume.init), list["metadata"]?["resourceVersion"]?.stringValue ?? "",
            list["metadata"]?["continue"]?.stringValue ?? ""
        )
    }

    /// Watches PVs from `resourceVersion` until the server ends the stream (after about
    /// `timeoutSeconds`), `onEvent` returns false, or the task is cancelled. Each event is handed
    /// over as it arrives, on the transport's thread.
    public func watchPersistentVolumes(
        from resourceVersion: String, timeoutSeconds: Int, onEvent: @escaping @Sendable (WatchEvent) -> Bool
    ) async throws(KubernetesError) {
        let path =
            "/api/v1/persistentvolumes?watch=true&allowWatchBookmarks=true&resourceVersion="
            + Self.percentEncoded(resourceVersion) + "&timeoutSeconds=\(timeoutSeconds)"
        var watch = try request("GET", path)
        // The server ends the stream after timeoutSeconds; the transport's limit is a safety net.
        watch.timeout = .seconds(timeoutSeconds + 30)
        let lines = LineSplitter()
        let errorBody = Mutex<[UInt8]>([])
        let stopped = Mutex(false)
        let response: HTTPResponse
        do {
            response = try await transport.stream(watch) { status, bytes in
                guard status == 200 else {
                    errorBody.withLock { if $0.count < 64 * 1024 { $0 += bytes } }
                    return true
                }
                for line in lines.append(bytes) {
                    guard let event = Self.event(line) else { continue }
                    if !onEvent(event) {
                        stopped.withLock { $0 = true }
                        return false
                    }
                }
                return lines.isWithinLimit
            }
        } catch {
            // Stopped on purpose (onEvent said so): not a failure.
            if stopped.withLock({ $0 }) { return }
            if !lines.isWithinLimit { throw .malformed("a watch event longer than \(LineSplitter.limit) bytes") }
            throw .transport(Self.describe(error))
        }
        try Self.check(
            HTTPResponse(status: response.status, headers: response.headers, body: errorBody.withLock { $0 }))
    }

    /// Sets `pv.beta.kubernetes.io/gid` on one PV with a JSON merge patch (other annotations stay).
    public func patchGIDAnnotation(name: String, gid: String) async throws(KubernetesError) {
        // A PV name is a DNS subdomain and the GID decimal digits: nothing here needs escaping.
        guard
            name.utf8.allSatisfy({
                ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e
            }),
            gid.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
        else { throw .malformed("PV name '\(printable(name))' or GID '\(printable(gid))' is not valid") }
        var patch = try request("PATCH", "/api/v1/persistentvolumes/\(name)")
        patch.headers.append((name: "Content-Type", value: "application/merge-patch+json"))
        patch.body = Array(#"{"metadata":{"annotations":{"\#(PersistentVolume.gidAnnotation)":"\#(gid)"}}}"#.utf8)
        try Self.check(try await send(patch))
    }

    private func request(_ method: String, _ path: String) throws(KubernetesError) -> HTTPRequest {
        HTTPRequest(
            method: method, url: config.apiURL + path,
            headers: [
                (name: "Authorization", value: "Bearer " + (try config.token())),
                (name: "Accept", value: "application/json"),
                (name: "User-Agent", value: userAgent),
            ], connectTimeout: .seconds(5), timeout: .seconds(30))
    }

    private func send(_ request: HTTPRequest) async throws(KubernetesError) -> HTTPResponse {
        do {
            return try await transport.send(request)
        } catch {
            throw .transport(Self.describe(error))
        }
    }

    private static func describe(_ error: HTTPTransportError) -> String {
        switch error {
        case .cannotConnect(let text), .timedOut(let text), .tls(let text), .failed(let text), .unusable(let text):
            text
        }
    }

    /// Throws the API's Status for a non-2xx answer.
    static func check(_ response: HTTPResponse) throws(KubernetesError) {
        guard !(200..<300).contains(response.status) else { return }
        let status = try? JSONValue(parsing: response.body)
        let message = status?["message"]?.stringValue ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        throw .status(code: response.status, message: printable(message))
    }

    static func json(_ bytes: [UInt8]) throws(KubernetesError) -> JSONValue {
        do {
            return try JSONValue(parsing: bytes)
        } catch {
            throw .malformed("not JSON: \(error)")
        }
    }

    /// One line of a watch stream as an event; nil for a line that is not one (blank, unknown type).
    static func event(_ line: [UInt8]) -> WatchEvent? {
        guard let value = try? JSONValue(parsing: line), case .string(let type)? = value["type"],
            let object = value["object"]
        else { return nil }
        switch type {
        case "ADDED": return PersistentVolume(object).map { .added($0) }
        case "MODIFIED": return PersistentVolume(object).map { .modified($0) }
        case "DELETED": return PersistentVolume(object).map { .deleted($0) }
        case "BOOKMARK":
            return object["metadata"]?["resourceVersion"]?.stringValue.map { .bookmark(resourceVersion: $0) }
        case "ERROR":
            let code = object["code"]?.intValue ?? 0
            return code == 410 ? .expired : .error(code: code, message: printable(object["message"]?.stringValue ?? ""))
        default: return nil
        }
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters.
    static func percentEncoded(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            let unreserved =
                (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2d || byte == 0x2e || byte == 0x5f || byte == 0x7e
            if unreserved {
                output.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                output += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return output
    }
}

/// Cuts a byte stream into newline-terminated lines (watch events), bounded in length.
final class LineSplitter: Sendable {
    /// A watch event larger than this is refused (a PV is a few KiB).
    static let limit = 8 << 20
    private let pending = Mutex<[UInt8]>([])
    private let overflowed = Mutex(false)

    var isWithinLimit: Bool { !overflowed.withLock { $0 } }

    /// The complete lines `bytes` finishes, without their line ends.
    func append(_ bytes: [UInt8]) -> [[UInt8]] {
        pending.withLock { pending in
            pending += bytes
            var lines: [[UInt8]] = []
            var start = 0
            while let newline = pending[start...].firstIndex(of: 0x0A) {
                lines.append(Array(pending[start..<newline]))
                start = newline + 1
            }
            pending.removeFirst(start)
            if pending.count > Self.limit { overflowed.withLock { $0 = true } }
            return lines
        }
    }
}

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        guard case .object(let fields) = self else { return nil }
        return fields[key]
    }

    var stringValue: String? {
        guard case .string(let text) = self else { return nil }
        return text
    }

    var intValue: Int? {
        guard case .number(let number) = self, number.rounded() == number, abs(number) < 1e15 else { return nil }
        return Int(number)
    }
}
