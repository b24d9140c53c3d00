import CSICore
import Glibc
import Logging
import Testing

@testable import glusterfs_csi

private func configuration(
    _ flags: DriverConfiguration.Flags = .init(), environment: [String: String] = [:]
) throws -> DriverConfiguration {
    try DriverConfiguration(flags: flags, environment: environment, hostName: { "node-7" })
}

@Suite struct DriverConfigurationTests {
    @Test func defaults() throws {
        let config = try configuration()
        #expect(config.endpoint.path == "/csi/csi.sock")
        #expect(config.mode == .all)
        #expect(config.nodeID == "node-7")
        #expect(config.driverName == "glusterfs.csi.heketi.io")
        #expect(config.logLevel == .info)
        #expect(config.logFormat == .text)
        #expect(config.maxMessageBytes == 4 << 20)
        #expect(config.shutdownGrace == .seconds(25))
        #expect(config.maxControllerCalls == 64)
        #expect(config.maxNodeCalls == 32)
        #expect(!config.testHooks)
    }

    @Test func callCapsComeFromFlagsOrTheEnvironment() throws {
        let environment = ["GLUSTERFS_CSI_MAX_CONTROLLER_CALLS": "16", "GLUSTERFS_CSI_MAX_NODE_CALLS": "1024"]
        let fromEnvironment = try configuration(environment: environment)
        #expect(fromEnvironment.maxControllerCalls == 16)
        #expect(fromEnvironment.maxNodeCalls == 1024)
        var flags = DriverConfiguration.Flags()
        flags.maxControllerCalls = "1"
        let fromFlag = try configuration(flags, environment: environment)
        #expect(fromFlag.maxControllerCalls == 1)
        #expect(fromFlag.maxNodeCalls == 1024)
    }

    @Test func environmentFillsWhatFlagsLeaveOut() throws {
        let config = try configuration(
            environment: [
                "GLUSTERFS_CSI_ENDPOINT": "unix:///plugin/csi.sock", "GLUSTERFS_CSI_MODE": "node",
                "GLUSTERFS_CSI_NODE_ID": "worker-3", "GLUSTERFS_CSI_LOG_FORMAT": "JSON",
                "GLUSTERFS_CSI_LOG_LEVEL": "debug",
            ])
        #expect(config.endpoint.path == "/plugin/csi.sock")
        #expect(config.mode == .node)
        #expect(config.nodeID == "worker-3")
        #expect(config.logFormat == .json)
        #expect(config.logLevel == .debug)
    }

    @Test func flagsWinOverTheEnvironment() throws {
        var flags = DriverConfiguration.Flags()
        flags.mode = "controller"
        let config = try configuration(flags, environment: ["GLUSTERFS_CSI_MODE": "node"])
        #expect(config.mode == .controller)
    }

    @Test func emptyVariablesCountAsUnset() throws {
        let config = try configuration(environment: ["GLUSTERFS_CSI_NODE_ID": ""])
        #expect(config.nodeID == "node-7")
    }

    @Test(arguments: [
        (DriverConfiguration.Flags(mode: "sideways"), "--mode (GLUSTERFS_CSI_MODE) 'sideways'"),
        (DriverConfiguration.Flags(driverName: "bad name"), "driver name 'bad name' is invalid"),
        (DriverConfiguration.Flags(logLevel: "loud"), "--log-level (GLUSTERFS_CSI_LOG_LEVEL) 'loud'"),
        (DriverConfiguration.Flags(logFormat: "xml"), "--log-format (GLUSTERFS_CSI_LOG_FORMAT) 'xml'"),
        (DriverConfiguration.Flags(maxMessageSize: "lots"), "--max-message-size"),
        (DriverConfiguration.Flags(shutdownGrace: "-1"), "--shutdown-grace"),
        (
            DriverConfiguration.Flags(maxControllerCalls: "0"),
            "--max-controller-calls (GLUSTERFS_CSI_MAX_CONTROLLER_CALLS) '0': expected a number of calls from 1 to "
                + "1024 (default 64)"
        ),
        (
            DriverConfiguration.Flags(maxNodeCalls: "lots"),
            "--max-node-calls (GLUSTERFS_CSI_MAX_NODE_CALLS) 'lots': expected a number of calls from 1 to 1024 "
                + "(default 32)"
        ),
        (DriverConfiguration.Flags(endpoint: "tcp://h:1"), "only Unix sockets"),
        (DriverConfiguration.Flags(nodeID: String(repeating: "n", count: 200)), "--node-id"),
        // The node service's own rules, checked where the flag is read so the error names it.
        (
            DriverConfiguration.Flags(nodeID: String(repeating: "n", count: 150)),
            "--node-id (GLUSTERFS_CSI_NODE_ID): node ID must be 1 to 128 bytes"
        ),
        (
            DriverConfiguration.Flags(mountLogDirectory: "/tmp/logs/"),
            "--mount-log-dir (GLUSTERFS_CSI_MOUNT_LOG_DIR): log directory must be"
        ),
    ])
    func badValuesSayWhatIsWrong(_ flags: DriverConfiguration.Flags, _ expected: String) {
        #expect {
            _ = try configuration(flags)
        } throws: { error in
            let error = error as! CSIError
            return error.code == .invalidArgument && error.message.contains(expected)
        }
    }

    @Test func modesSelectServices() {
        #expect(DriverMode.controller.servesController && !DriverMode.controller.servesNode)
        #expect(!DriverMode.node.servesController && DriverMode.node.servesNode)
        #expect(DriverMode.all.servesController && DriverMode.all.servesNode)
    }
}

@Suite struct LogHandlerTests {
    private let metadata: Logger.Metadata = ["rpc.method": "/csi.v1.Identity/Probe", "note": "two words"]

    @Test func textLinesQuoteValuesWithSpaces() {
        let handler = DriverLogHandler(logLevel: .info, format: .text, label: "t")
        let line = handler.render(level: .info, message: "rpc finished", metadata: metadata, time: "T")
        #expect(line == "T info rpc finished note=\"two words\" rpc.method=/csi.v1.Identity/Probe")
    }

    @Test func jsonLinesEscapeEverything() {
        let handler = DriverLogHandler(logLevel: .info, format: .json, label: "t")
        let line = handler.render(
            level: .warning, message: "quote \" and\nnewline", metadata: ["k": "\u{1}"], time: "T")
        #expect(
            line == #"{"time":"T","level":"warning","logger":"t","message":"quote \" and\nnewline","k":"\u0001"}"#)
    }

    @Test func timestampsAreRFC3339WithMilliseconds() {
        // The clock's own fields before and after, so a digit written in the wrong place cannot
        // pass (and a month ending between the reads cannot fail it).
        func yearAndMonth() -> (Int, Int) {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            var seconds = now.tv_sec
            var parts = tm()
            gmtime_r(&seconds, &parts)
            return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1)
        }
        let before = yearAndMonth()
        let stamp = DriverLogHandler.timestamp()
        let after = yearAndMonth()
        #expect(stamp.count == 24)
        let shape = Array("dddd-dd-ddTdd:dd:dd.dddZ")
        for (character, expected) in zip(stamp, shape) {
            #expect(expected == "d" ? character.isASCII && character.isNumber : character == expected, "\(stamp)")
        }
        let written = (Int(stamp.prefix(4)) ?? -1, Int(stamp.dropFirst(5).prefix(2)) ?? -1)
        #expect(written == before || written == after, "\(stamp)")
    }

    @Test(arguments: [
        ("plain", false), ("/csi.v1.Identity/Probe", false), ("", true), ("two words", true), ("a=b", true),
        ("say \"hi\"", true), ("line\nbreak", true), ("cr\r", true), ("tab\tonly", false), ("é", false),
        ("line\u{2028}separator", true), ("next\u{85}line", true),
        // A space or `=` with a combining mark after it is still a space or `=` to whoever splits
        // the line: quoted (the Character-based check of earlier versions let these through).
        (" \u{301}", true), ("a=\u{FE0F}b", true),
    ])
    func textValuesAreQuotedWhenTheyWouldBreakTheLine(value: String, quoted: Bool) {
        #expect(DriverLogHandler.needsQuotes(value) == quoted)
        #expect(DriverLogHandler.quotedIfNeeded(value) == (quoted ? JSONString.quoted(value) : value))
    }
}
