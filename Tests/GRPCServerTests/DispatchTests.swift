import CSICore
import CSIProto
import Logging
import SwiftProtobuf
import Testing

@testable import GRPCServer

private func context(deadline: ContinuousClock.Instant? = nil) -> RequestContext {
    RequestContext(logger: Logger(label: "test"), requestID: "7", deadline: deadline)
}

private struct NotMapped: Error {}

@Suite struct StatusMappingTests {
    @Test func csiErrorsKeepTheirCodeAndMessage() {
        let (code, message) = StatusMapping.status(
            for: CSIError(.notFound, "volume x does not exist"), context: context())
        #expect(code == .notFound)
        #expect(message == "volume x does not exist")
    }

    @Test func cancellationAfterTheDeadlineIsDeadlineExceeded() {
        let (code, _) = StatusMapping.status(for: CancellationError(), context: context(deadline: .now - .seconds(1)))
        #expect(code == .deadlineExceeded)
    }

    @Test func cancellationBeforeTheDeadlineIsCancelled() {
        let (code, _) = StatusMapping.status(for: CancellationError(), context: context(deadline: .now + .seconds(60)))
        #expect(code == .cancelled)
    }

    @Test func aMessageQuotingAHugeFieldIsCutAtACharacterBoundary() {
        // A multi-byte character across the cut must not be split.
        let huge = "volume '" + String(repeating: "é", count: 50_000) + "' does not exist"
        let (code, message) = StatusMapping.status(for: CSIError(.notFound, huge), context: context())
        #expect(code == .notFound)
        #expect(message.utf8.count <= StatusMapping.maximumMessageBytes)
        #expect(message.hasPrefix("volume 'éé"))
        #expect(message.hasSuffix(" … (message cut at 2048 bytes)"))
        #expect(!message.contains("\u{FFFD}"))
        let short = "volume x does not exist"
        #expect(StatusMapping.bounded(short) == short)
    }

    @Test func anythingElseIsInternalAndPointsAtTheLog() {
        let (code, message) = StatusMapping.status(for: NotMapped(), context: context())
        #expect(code == .internal)
        #expect(message.contains("request id 7"))
        #expect(!message.contains("NotMapped"))
    }
}

@Suite struct RouterTests {
    private func router() -> Router {
        var router = Router()
        router.register("/csi.v1.Identity/GetPluginInfo") {
            (_: Csi_V1_GetPluginInfoRequest, _) -> Csi_V1_GetPluginInfoResponse in
            var response = Csi_V1_GetPluginInfoResponse()
            response.name = "async"
            return response
        }
        router.registerInline("/csi.v1.Identity/Probe", logLevel: .trace) {
            (_: Csi_V1_ProbeRequest, _) -> Csi_V1_ProbeResponse in
            throw CSIError(.unavailable, "not ready")
        }
        return router
    }

    @Test func unknownPathsHaveNoRoute() {
        #expect(router().route(for: "/csi.v1.Identity/Nope") == nil)
    }

    @Test func asyncRoutesDecodeAndEncode() async throws {
        guard case .async(let body) = router().route(for: "/csi.v1.Identity/GetPluginInfo")?.body else {
            Issue.record("expected an async route")
            return
        }
        let bytes = try await body([], context())
        #expect(try Csi_V1_GetPluginInfoResponse(serializedBytes: bytes).name == "async")
    }

    @Test func undecodableRequestsAreInvalidArgument() async {
        guard case .async(let body) = router().route(for: "/csi.v1.Identity/GetPluginInfo")?.body else {
            Issue.record("expected an async route")
            return
        }
        await #expect {
            _ = try await body([0xFF, 0xFF, 0xFF], context())
        } throws: { error in
            let error = error as! CSIError
            return error.code == .invalidArgument && error.message.contains("csi.v1.GetPluginInfoRequest")
        }
    }

    @Test func inlineRoutesKeepTheirLogLevelAndPassErrorsThrough() {
        let route = router().route(for: "/csi.v1.Identity/Probe")
        #expect(route?.logLevel == .trace)
        guard case .inline(let body) = route?.body else {
            Issue.record("expected an inline route")
            return
        }
        #expect(throws: CSIError(.unavailable, "not ready")) { try body([], context()) }
    }
}
