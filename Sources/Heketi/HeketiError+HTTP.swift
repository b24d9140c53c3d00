import CSICore

// Every HTTP answer and transport failure → HeketiError, in one place (heketi-api.md records
// which statuses and texts Heketi uses). Messages carry Heketi's *short* reason only — one line,
// control characters removed, truncated — never the raw body, a header or a credential.

extension HeketiError {
    /// The longest piece of Heketi's text put into a message.
    static let maxReasonLength = 200

    /// The error for an HTTP answer that was not what the caller expected.
    ///
    /// - Parameters:
    ///   - status: the HTTP status.
    ///   - body: the raw body (Heketi answers errors as plain text).
    ///   - method, path: what was asked, for the message.
    ///   - endpoint: where; its description never shows the key.
    static func from(
        status: Int, body: [UInt8], method: String, path: String, endpoint: HeketiEndpoint
    ) -> HeketiError {
        let reason = shortReason(body)
        let request = "\(method) \(path)"
        switch status {
        case 400, 422:
            return .invalidRequest("Heketi refused \(request): \(orNoReason(reason))")
        case 401:
            return .unauthorized(unauthorizedMessage(reason: reason, endpoint: endpoint))
        case 403:
            return .unauthorized(
                "Heketi at \(endpoint) answered 403 to \(request) (\(orNoReason(reason))): check restuser and the key")
        case 404 where reason.contains("Id not found"):
            return .notFound("Heketi has no such object (\(request): Id not found)")
        case 404:
            // Not "Id not found": the path itself is wrong (resturl points somewhere else, or a
            // proxy rewrites paths). Never notFound — a delete would wrongly count as done.
            return .serverError(
                status: 404,
                message:
                    "Heketi at \(endpoint) does not know \(request) (\(orNoReason(reason))); "
                    + "check that resturl points at Heketi itself")
        case 429:
            return .throttled("Heketi at \(endpoint) is busy (429 Server busy) for \(request)")
        case 500:
            if reason.contains("contains other items, or is in use") {
                return .operationPending("another operation on this object is still running in Heketi (\(reason))")
            }
            if reason.contains("already in use") { return .nameInUse(reason) }
            if reason.contains("No space") { return .noSpace(reason) }
            if reason.contains("Maximum number of bricks") { return .tooManyBricks(reason) }
            return .serverError(status: 500, message: "Heketi failed \(request): \(orNoReason(reason))")
        case 500...599:
            return .serverError(
                status: status, message: "Heketi answered \(status) to \(request): \(orNoReason(reason))")
        default:
            return .serverError(
                status: status, message: "unexpected HTTP \(status) from Heketi for \(request): \(orNoReason(reason))")
        }
    }

    /// The error for an exchange that produced no HTTP answer.
    static func from(_ error: HTTPTransportError, method: String, path: String, endpoint: HeketiEndpoint) -> HeketiError
    {
        let request = "\(method) \(path)"
        switch error {
        case .cannotConnect(let reason):
            return .unreachable("cannot connect to Heketi at \(endpoint.url) (\(clean(reason)))")
        case .timedOut(let reason):
            return .timedOut("Heketi at \(endpoint.url) did not answer \(request) in time (\(clean(reason)))")
        case .tls(let reason):
            return .unreachable(
                "TLS with Heketi at \(endpoint.url) failed (\(clean(reason))); if Heketi's certificate comes from "
                    + "a private CA, configure that CA bundle")
        case .failed(let reason):
            return .unreachable("talking to Heketi at \(endpoint.url) failed during \(request) (\(clean(reason)))")
        case .unusable(let reason):
            return .clientUnusable(
                "the controller cannot make HTTP requests to Heketi at \(endpoint.url): \(clean(reason))")
        }
    }

    /// 401 texts name what Heketi disliked; turn each into what the admin must fix.
    static func unauthorizedMessage(reason: String, endpoint: HeketiEndpoint) -> String {
        let user = "'\(clean(endpoint.user))'"
        if reason.contains("Administrator access required") {
            return "Heketi user \(user) may only list and create volumes; the CSI controller needs restuser 'admin' "
                + "and Heketi's admin key"
        }
        if reason.contains("Required authorization token not found") {
            return "Heketi at \(endpoint.url) requires authentication but no key is configured; "
                + "set the Heketi key for user \(user)"
        }
        if reason.contains("signature is invalid") {
            return "Heketi at \(endpoint.url) rejected the key for user \(user): it does not match Heketi's key for "
                + "that user"
        }
        if reason.contains("Unknown user") || reason.contains("missing iss") {
            return "Heketi at \(endpoint.url) does not know user \(user): restuser must be 'admin'"
        }
        if reason.contains("expired") || reason.contains("used before issued") || reason.contains("not valid yet") {
            return "Heketi at \(endpoint.url) rejected the token's time (\(reason)): the clocks of this node and of "
                + "the Heketi server differ; synchronise them (NTP)"
        }
        if reason.contains("Invalid qsh claim") {
            return "Heketi at \(endpoint.url) rejected the token's request hash: something between the controller "
                + "and Heketi rewrites the URL path; point resturl at Heketi directly"
        }
        return "Heketi at \(endpoint.url) refused the credentials of user \(user) (\(orNoReason(reason)))"
    }

    /// Heketi's text reduced to one safe line: control characters become spaces, runs of spaces
    /// collapse, and the result is cut to `maxReasonLength` characters.
    static func shortReason(_ body: [UInt8]) -> String {
        clean(String(decoding: body, as: UTF8.self))
    }

    static func clean(_ text: String) -> String {
        var output = ""
        var pendingSpace = false
        var count = 0
        for scalar in text.unicodeScalars {
            let isControl = scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
            if isControl || scalar == " " || scalar.properties.isWhitespace {
                pendingSpace = !output.isEmpty
                continue
            }
            if count + (pendingSpace ? 1 : 0) >= maxReasonLength {
                output += "…"
                return output
            }
            if pendingSpace {
                output += " "
                count += 1
                pendingSpace = false
            }
            output.unicodeScalars.append(scalar)
            count += 1
        }
        return output
    }

    private static func orNoReason(_ reason: String) -> String {
        reason.isEmpty ? "no reason given" : reason
    }
}
