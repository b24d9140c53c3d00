import CSICore
import Logging
import Testing

@Suite struct DriverInfoTests {
    @Test(arguments: [
        "glusterfs.csi.heketi.io", "a", "x1", "my-driver_v2.example", String(repeating: "a", count: 63),
    ])
    func validNames(_ name: String) throws {
        try DriverInfo.validate(name: name)
    }

    @Test(arguments: [
        "", "-leading", "trailing.", "under_", "has space", "slash/name", "ümlaut", String(repeating: "a", count: 64),
    ])
    func invalidNamesSayWhatIsAccepted(_ name: String) {
        #expect {
            try DriverInfo.validate(name: name)
        } throws: { error in
            let error = error as! CSIError
            return error.code == .invalidArgument && error.message.contains("at most 63 characters")
        }
    }
}

@Suite struct RequestContextTests {
    @Test func remainingIsCappedByTheDeadline() {
        let logger = Logger(label: "test")
        let soon = RequestContext(logger: logger, requestID: "1", deadline: .now + .milliseconds(200))
        #expect(soon.remaining(atMost: .seconds(30)) <= .milliseconds(200))
        #expect(soon.remaining(atMost: .milliseconds(10)) == .milliseconds(10))
        let none = RequestContext(logger: logger, requestID: "2")
        #expect(none.remaining(atMost: .seconds(5)) == .seconds(5))
        let past = RequestContext(logger: logger, requestID: "3", deadline: .now - .seconds(1))
        #expect(past.remaining(atMost: .seconds(5)) == .zero)
    }

    @Test func statusNamesMatchGRPC() {
        #expect(StatusCode.invalidArgument.description == "INVALID_ARGUMENT")
        #expect(StatusCode.resourceExhausted.rawValue == 8)
        #expect(StatusCode.unauthenticated.rawValue == 16)
        #expect(StatusCode.allCases.map(\.rawValue) == Array(0...16))
    }
}
