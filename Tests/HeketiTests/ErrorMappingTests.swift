import CSICore
import Testing

@testable import Heketi

private let endpoint = HeketiEndpoint(url: "http://heketi:8080", user: "admin", key: "sentinel-KEY-42")

private func classify(_ status: Int, _ body: String, path: String = "/volumes") -> HeketiError {
    HeketiError.from(status: status, body: Array(body.utf8), method: "POST", path: path, endpoint: endpoint)
}

/// The case of an error, ignoring its message.
private func kind(_ error: HeketiError) -> String {
    switch error {
    case .notFound: "notFound"
    case .invalidRequest: "invalidRequest"
    case .unauthorized: "unauthorized"
    case .nameInUse: "nameInUse"
    case .noSpace: "noSpace"
    case .tooManyBricks: "tooManyBricks"
    case .operationPending: "operationPending"
    case .throttled: "throttled"
    case .operationFailed: "operationFailed"
    case .serverError(let status, _): "serverError(\(status))"
    case .unreachable: "unreachable"
    case .timedOut: "timedOut"
    case .clientUnusable: "clientUnusable"
    }
}

private func message(_ error: HeketiError) -> String {
    switch error {
    case .notFound(let m), .invalidRequest(let m), .unauthorized(let m), .nameInUse(let m), .noSpace(let m),
        .tooManyBricks(let m), .operationPending(let m), .throttled(let m), .operationFailed(let m),
        .serverError(_, let m), .unreachable(let m), .timedOut(let m), .clientUnusable(let m):
        m
    }
}

@Suite struct ErrorMappingTests {
    /// Every answer heketi-api.md records, and the error it becomes.
    @Test(arguments: [
        (404, "Id not found", "notFound"),
        (404, "Invalid path or request", "serverError(404)"),
        (400, "Invalid volume size", "invalidRequest"),
        (422, "request unable to be parsed", "invalidRequest"),
        (401, "Administrator access required", "unauthorized"),
        (403, "Forbidden", "unauthorized"),
        (429, "Server busy. Retry operation later.", "throttled"),
        (500, "Failed to allocate new volume: Volume name 'pvc-a' already in use", "nameInUse"),
        (500, "Failed to allocate new volume: No space", "noSpace"),
        (500, "Maximum number of bricks reached.", "tooManyBricks"),
        (500, "Unable to delete volume: The target exists, contains other items, or is in use.", "operationPending"),
        (500, "something else broke", "serverError(500)"),
        (502, "Bad Gateway", "serverError(502)"),
        (503, "", "serverError(503)"),
        (302, "", "serverError(302)"),
        (200, "", "serverError(200)"),
    ])
    func statusesMapToErrors(status: Int, body: String, expected: String) {
        #expect(kind(classify(status, body)) == expected)
    }

    @Test func nameInUseKeepsHeketisReason() {
        #expect(
            classify(500, "Failed to allocate new volume: Volume name 'pvc-a' already in use\n")
                == .nameInUse("Failed to allocate new volume: Volume name 'pvc-a' already in use"))
    }

    @Test(arguments: [
        ("Administrator access required", "restuser 'admin'"),
        ("Required authorization token not found", "no key is configured"),
        ("Invalid JWT token: signature is invalid (client and server secrets may not match)", "does not match"),
        ("Invalid JWT token: Unknown user", "does not know user"),
        ("Invalid JWT token: Token is expired by 5m0s", "clocks"),
        ("Invalid JWT token: Token used before issued (client and server clocks may differ)", "clocks"),
        ("Invalid qsh claim in token", "rewrites the URL path"),
        ("Something new", "refused the credentials"),
    ])
    func unauthorizedSaysWhatToFix(body: String, hint: String) {
        let error = classify(401, body)
        #expect(kind(error) == "unauthorized")
        #expect(message(error).contains(hint))
        #expect(!message(error).contains("sentinel-KEY-42"))
    }

    @Test func reasonsAreShortSingleLinesWithoutControlCharacters() {
        let noisy = "line one\r\n\tline\u{1B}[31m two\u{0}" + String(repeating: "x", count: 1000)
        let reason = HeketiError.shortReason(Array(noisy.utf8))
        #expect(!reason.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }))
        #expect(reason.hasPrefix("line one line [31m two"))
        #expect(reason.count == HeketiError.maxReasonLength + 1)
        #expect(reason.hasSuffix("…"))
        let error = classify(500, noisy)
        #expect(message(error).count < 300)
    }

    /// Found by fuzzing: a space falling exactly at the bound made the reason one character too long.
    @Test func aSpaceAtTheBoundStillCutsAtTheBound() {
        let text = String(repeating: "x", count: HeketiError.maxReasonLength - 1) + " yz"
        let reason = HeketiError.shortReason(Array(text.utf8))
        #expect(reason.count == HeketiError.maxReasonLength)
        #expect(reason.hasSuffix("x…"))
    }

    @Test(arguments: [
        (HTTPTransportError.cannotConnect("Connection refused"), "unreachable"),
        (.timedOut("Operation timed out after 5000 ms"), "timedOut"),
        (.tls("SSL certificate problem: unable to get local issuer certificate"), "unreachable"),
        (.failed("Recv failure: Connection reset by peer"), "unreachable"),
        (.unusable("libcurl.so.4 could not be loaded; install libcurl4"), "clientUnusable"),
    ])
    func transportFailuresMapToErrors(failure: HTTPTransportError, expected: String) {
        let error = HeketiError.from(failure, method: "GET", path: "/volumes", endpoint: endpoint)
        #expect(kind(error) == expected)
        #expect(message(error).contains("http://heketi:8080"))
    }

    @Test func tlsFailuresMentionTheCABundle() {
        let error = HeketiError.from(.tls("certificate problem"), method: "GET", path: "/volumes", endpoint: endpoint)
        #expect(message(error).contains("CA bundle"))
    }

    /// The one table of Heketi failures → CSI statuses.
    @Test(arguments: [
        (HeketiError.invalidRequest("Heketi refused POST /volumes: Invalid volume size"), StatusCode.invalidArgument),
        (.unauthorized("Heketi rejected the key"), .unauthenticated),
        (.notFound("Id not found"), .notFound),
        (.noSpace("No space"), .resourceExhausted),
        (.tooManyBricks("Maximum number of bricks reached."), .outOfRange),
        (.nameInUse("Volume name 'x' already in use"), .aborted),
        (.operationPending("in use"), .aborted),
        (.throttled("busy"), .unavailable),
        (.unreachable("refused"), .unavailable),
        (.serverError(status: 500, message: "boom"), .unavailable),
        (.operationFailed("peers down"), .unavailable),
        (
            .operationFailed(
                "snapshot create: failed: Snapshot is supported only for thin provisioned LV. Ensure that all bricks "
                    + "of vol_1 are thinly provisioned LV."), .failedPrecondition
        ),
        (.timedOut("slow"), .deadlineExceeded),
    ])
    func csiStatuses(error: HeketiError, code: StatusCode) {
        let csi = error.csiError
        #expect(csi.code == code)
        // Says what was wrong (keeps Heketi's short reason) and what to do (a second sentence).
        #expect(csi.message.contains(message(error).trimmingCharacters(in: ".")))
        #expect(csi.message.count > message(error).count + 10)
        #expect(!csi.message.contains(".."))
    }

    @Test func aCloneOnThickBricksSaysWhyNoRetryHelps() {
        let csi = HeketiError.operationFailed("Snapshot is supported only for thin provisioned LV").csiError
        #expect(csi.code == .failedPrecondition)
        #expect(csi.message.contains("thinly provisioned LVM"))
        #expect(!csi.message.contains("peer status"))
    }

    @Test func unauthenticatedPointsAtTheSecret() {
        #expect(HeketiError.unauthorized("x").csiError.message.contains("provisioner secret (key 'key') and restuser"))
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}
