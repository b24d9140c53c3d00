import CCurlShim
import CSICore

/// Owns one `ccurl_transfer` (a libcurl easy handle with its collected response) and frees it in
/// `deinit`.
///
/// `@unchecked Sendable` because the handle is not thread-safe: `CurlHTTPTransport` hands a
/// `CurlEasy` to exactly one request at a time (its pool checks it out and back in), and that
/// request touches it from one thread at a time. The one exception, `cancel()`, is documented
/// thread-safe by the shim (an atomic flag).
final class CurlEasy: @unchecked Sendable {
    /// OWNED; freed in deinit.
    private let transfer: OpaquePointer

    /// Nil when libcurl could not allocate a handle.
    init?(maxBodyBytes: Int) {
        guard let transfer = ccurl_transfer_create(max(0, maxBodyBytes)) else { return nil }
        self.transfer = transfer
    }

    deinit {
        ccurl_transfer_destroy(transfer)
    }

    /// Asks a running `perform` to stop (thread-safe).
    func cancel() {
        ccurl_transfer_cancel(transfer)
    }

    /// Forgets the last request and response but keeps the connection cache, so the next request
    /// to the same Heketi reuses the TCP (and TLS) connection.
    func reset() {
        ccurl_transfer_reset(transfer)
    }

    /// Sets every option for `request`. Must be called on a freshly reset handle.
    func configure(_ request: HTTPRequest, caBundlePath: String?) throws(HTTPTransportError) {
        try set(CURLOPT_URL, request.url)
        // Only http and https, whatever the URL says (no file://, no gopher://).
        try set(CURLOPT_PROTOCOLS_STR, "http,https")
        // The caller must see Heketi's 303 and its Location: it mints a new token for the target.
        try set(CURLOPT_FOLLOWLOCATION, 0)
        // No SIGALRM for DNS timeouts: signals and threads do not mix.
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout))
        try set(CURLOPT_TIMEOUT_MS, Self.milliseconds(request.timeout))
        // Verification is never switched off. libcurl's defaults already verify; setting them
        // says so here and guards against a future default change.
        try set(CURLOPT_SSL_VERIFYPEER, 1)
        try set(CURLOPT_SSL_VERIFYHOST, 2)
        if let caBundlePath {
            // Replaces the default CA file; the default CA directory (the system store) stays.
            try set(CURLOPT_CAINFO, caBundlePath)
        }

        let method = HTTPRequest.canonicalMethod(request.method)
        switch method {
        case "GET" where request.body.isEmpty:
            try set(CURLOPT_HTTPGET, 1)
        case "HEAD":
            try set(CURLOPT_NOBODY, 1)
        case "POST":
            try setBody(request.body)
        default:
            try set(CURLOPT_CUSTOMREQUEST, method)
            if !request.body.isEmpty { try setBody(request.body) }
        }

        for header in request.headers {
            // A CR or LF in a header would let a value inject more headers; refuse it (the value
            // itself is not shown: it may be a token).
            guard Self.isSafeHeaderPart(header.name), Self.isSafeHeaderPart(header.value), !header.name.isEmpty
            else {
                throw .failed("request header '\(Self.printable(header.name))' contains a line break or is empty")
            }
            try appendHeader("\(header.name): \(header.value)")
        }
        // libcurl sends "Expect: 100-continue" for larger bodies and then waits up to a second
        // for an answer many servers never send; an empty Expect header turns that off.
        try appendHeader("Expect:")
    }

    /// Configures and performs `request`. BLOCKS: call only from a dedicated thread.
    func run(_ request: HTTPRequest, caBundlePath: String?) -> Result<HTTPResponse, HTTPTransportError> {
        do throws(HTTPTransportError) {
            try configure(request, caBundlePath: caBundlePath)
        } catch {
            return .failure(error)
        }
        return perform()
    }

    /// Configures and performs `request`, handing the body to `onData` as it arrives (with the
    /// response's status) instead of collecting it; `onData` returning false stops the transfer.
    /// The response returned has an empty body. BLOCKS: call only from a dedicated thread.
    func runStreaming(
        _ request: HTTPRequest, caBundlePath: String?, onData: @escaping (_ status: Int, _ bytes: [UInt8]) -> Bool
    ) -> Result<HTTPResponse, HTTPTransportError> {
        do throws(HTTPTransportError) {
            try configure(request, caBundlePath: caBundlePath)
        } catch {
            return .failure(error)
        }
        let sink = StreamSink(transfer: transfer, onData: onData)
        let context = Unmanaged.passRetained(sink)
        defer { context.release() }
        ccurl_transfer_set_stream(
            transfer,
            { context, bytes, length in
                let sink = Unmanaged<StreamSink>.fromOpaque(context!).takeUnretainedValue()
                let piece = bytes.map { [UInt8](UnsafeBufferPointer(start: $0, count: length)) } ?? []
                return sink.onData(Int(ccurl_transfer_status(sink.transfer)), piece) ? 0 : 1
            }, context.toOpaque())
        return perform()
    }

    /// Performs the configured request. BLOCKS: call only from a dedicated thread.
    func perform() -> Result<HTTPResponse, HTTPTransportError> {
        let code = ccurl_transfer_perform(transfer)
        guard code == CURLE_OK else {
            let detail = String(cString: ccurl_transfer_error(transfer))
            let overflowed = ccurl_transfer_body_overflowed(transfer) != 0
            return .failure(CurlErrorMapping.error(for: code, detail: detail, bodyOverflowed: overflowed))
        }
        let status = Int(ccurl_transfer_status(transfer))
        var headerLength = 0
        let headerBytes = ccurl_transfer_headers(transfer, &headerLength)!
        let headers = Self.parseHeaders(UnsafeRawBufferPointer(start: headerBytes, count: headerLength))
        var bodyLength = 0
        let bodyBytes = ccurl_transfer_body(transfer, &bodyLength)!
        let body = [UInt8](UnsafeBufferPointer(start: bodyBytes, count: bodyLength))
        return .success(HTTPResponse(status: status, headers: headers, body: body))
    }

    /// The header block of one response (as the shim collects it: the final response's status
    /// line and header lines, CRLF or LF line ends) → a dictionary with lower-case names, values
    /// without surrounding spaces and tabs, and repeated headers joined with ", " as RFC 9110
    /// allows for list-valued fields. Status lines and lines without a name are skipped.
    ///
    /// Works on the raw bytes: this runs for every Heketi answer, including each queue poll, and
    /// splitting a `String` into `Character`s cost several per cent of the controller's CPU.
    static func parseHeaders(_ block: UnsafeRawBufferPointer) -> [String: String] {
        var headers: [String: String] = [:]
        var lineStart = 0
        while lineStart < block.count {
            let newline = block[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? block.count
            // CRLF or LF ends a line; a CR elsewhere (even last in the block) is data.
            var lineEnd = newline
            if newline < block.count, lineEnd > lineStart, block[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            let line = UnsafeRawBufferPointer(rebasing: block[lineStart..<lineEnd])
            lineStart = newline + 1
            if line.starts(with: "HTTP/".utf8) { continue }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = trimmingSpaces(line[..<colon])
            guard !name.isEmpty else { continue }
            let key = String(unsafeUninitializedCapacity: name.count) { output in
                for (offset, byte) in name.enumerated() {
                    output[offset] = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                }
                return name.count
            }
            let value = String(decoding: trimmingSpaces(line[(colon + 1)...]), as: UTF8.self)
            if let existing = headers[key] {
                headers[key] = existing + ", " + value
            } else {
                headers[key] = value
            }
        }
        return headers
    }

    /// `bytes` without leading and trailing spaces and tabs.
    private static func trimmingSpaces(_ bytes: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        return bytes[start..<end]
    }

    private func set(_ option: CURLoption, _ value: Int) throws(HTTPTransportError) {
        try check(ccurl_transfer_setopt_long(transfer, option, value), option)
    }

    private func set(_ option: CURLoption, _ value: String) throws(HTTPTransportError) {
        try check(ccurl_transfer_setopt_string(transfer, option, value), option)
    }

    private func setBody(_ body: [UInt8]) throws(HTTPTransportError) {
        let code = body.withUnsafeBufferPointer { ccurl_transfer_set_body(transfer, $0.baseAddress, $0.count) }
        try check(code, CURLOPT_COPYPOSTFIELDS)
    }

    private func appendHeader(_ line: String) throws(HTTPTransportError) {
        try check(ccurl_transfer_append_header(transfer, line), CURLOPT_HTTPHEADER)
    }

    private func check(_ code: CURLcode, _ option: CURLoption) throws(HTTPTransportError) {
        guard code == CURLE_OK else {
            throw .failed("libcurl refused option \(option.rawValue): \(String(cString: ccurl_strerror(code)))")
        }
    }

    /// A timeout for libcurl: whole milliseconds, at least 1 (0 would mean "no timeout").
    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 1 }
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return Int.max }
        let total = scaled.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        return total.overflow ? Int.max : max(1, Int(total.partialValue))
    }

    private static func isSafeHeaderPart(_ text: String) -> Bool {
        !text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 })
    }

    private static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }
}

/// What the shim's stream callback reaches through its context pointer.
private final class StreamSink {
    let transfer: OpaquePointer
    let onData: (Int, [UInt8]) -> Bool

    init(transfer: OpaquePointer, onData: @escaping (Int, [UInt8]) -> Bool) {
        self.transfer = transfer
        self.onData = onData
    }
}
