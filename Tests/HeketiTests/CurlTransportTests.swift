import CSICore
import Foundation
import Testing

@testable import CurlTransport
@testable import Heketi

private func withTinyServer<T>(
    tls: (cert: String, key: String)? = nil, _ body: (PythonServer) async throws -> T
) async throws -> T {
    let script = try PythonServer.writeScript(tinyServerScript, name: "tiny_server.py")
    defer { try? FileManager.default.removeItem(atPath: (script as NSString).deletingLastPathComponent) }
    var arguments: [String] = []
    if let tls { arguments += ["--cert", tls.cert, "--key", tls.key] }
    return try await PythonServer.run(script: script, arguments: arguments, body)
}

private struct Echo: Decodable {
    var method: String
    var path: String
    var headers: [[String]]
    var body: String

    func header(_ name: String) -> String? {
        headers.first { $0[0].lowercased() == name.lowercased() }?[1]
    }
}

private func elapsed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let value = try await body()
    return (value, ContinuousClock.now - start)
}

@Suite(.serialized, .timeLimit(.minutes(2))) struct CurlTransportTests {
    let transport = CurlHTTPTransport()

    @Test func redirectsAreReturnedNotFollowedAndHeaderNamesAreLowerCase() async throws {
        try await withTinyServer { server in
            let response = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/redirect"))
            #expect(response.status == 303)
            #expect(response.headers["location"] == "/target")
            #expect(response.headers["x-pending"] == "false")
            #expect(response.headers["x-twice"] == "a, b")
            #expect(response.headers.keys.allSatisfy { $0 == $0.lowercased() })
        }
    }

    @Test func methodHeadersAndBodyArriveAsGiven() async throws {
        try await withTinyServer { server in
            // 4 KiB: big enough that libcurl would otherwise send "Expect: 100-continue" and
            // wait a second for an answer.
            let body = Array(repeating: UInt8(ascii: "a"), count: 4096)
            for method in ["POST", "DELETE", "PUT"] {
                let (response, took) = try await elapsed {
                    try await transport.send(
                        HTTPRequest(
                            method: method, url: server.baseURL + "/echo?x=1",
                            headers: [("Authorization", "Bearer test-token"), ("Content-Type", "application/json")],
                            body: body))
                }
                #expect(response.status == 200)
                let echo = try JSONDecoder().decode(Echo.self, from: Data(response.body))
                #expect(echo.method == method)
                #expect(echo.path == "/echo?x=1")
                #expect(echo.body.count == 4096)
                #expect(echo.header("Authorization") == "Bearer test-token")
                #expect(echo.header("Content-Type") == "application/json")
                #expect(echo.header("Expect") == nil)
                #expect(took < .milliseconds(900))
            }
            let get = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/echo"))
            #expect(try JSONDecoder().decode(Echo.self, from: Data(get.body)).method == "GET")
        }
    }

    @Test func headersWithLineBreaksAreRefused() async throws {
        await #expect(throws: HTTPTransportError.self) {
            try await transport.send(
                HTTPRequest(method: "GET", url: "http://127.0.0.1:1/", headers: [("X-A", "1\r\nX-Injected: 2")]))
        }
    }

    @Test func connectionsAreReusedBetweenRequests() async throws {
        try await withTinyServer { server in
            let first = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/peer"))
            let second = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/peer"))
            #expect(first.body == second.body)
            #expect(transport.idleHandleCount == 1)
        }
    }

    @Test func refusedConnectionsAreCannotConnect() async throws {
        // Bind a port, then close it: nothing listens there.
        let port = try freePort()
        await #expect {
            try await transport.send(HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)/"))
        } throws: { error in
            guard case .cannotConnect = error as? HTTPTransportError else { return false }
            return true
        }
    }

    @Test func aSlowServerTimesOut() async throws {
        try await withTinyServer { server in
            let start = ContinuousClock.now
            await #expect {
                try await transport.send(
                    HTTPRequest(method: "GET", url: server.baseURL + "/slow?s=3", timeout: .milliseconds(300)))
            } throws: { error in
                guard case .timedOut = error as? HTTPTransportError else { return false }
                return true
            }
            #expect(ContinuousClock.now - start < .seconds(2))
        }
    }

    @Test func transfersRunOffTheCooperativePool() async throws {
        try await withTinyServer { server in
            // More half-second requests at once than twice the cores: on the cooperative pool
            // (one thread per core) they would queue in at least three rounds, ≥ 1.5 s.
            let count = max(8, 2 * ProcessInfo.processInfo.activeProcessorCount + 2)
            let (_, took) = try await elapsed {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<count {
                        group.addTask {
                            try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/slow?s=0.5"))
                                .status
                        }
                    }
                    for try await status in group { #expect(status == 200) }
                }
            }
            #expect(took < .milliseconds(1200))
        }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        try await withTinyServer { server in
            let task = Task {
                try await transport.send(
                    HTTPRequest(method: "GET", url: server.baseURL + "/slow?s=5", timeout: .seconds(10)))
            }
            try await Task.sleep(for: .milliseconds(200))
            let (result, took) = await elapsed {
                task.cancel()
                return await task.result
            }
            #expect(throws: HTTPTransportError.failed("the request was cancelled")) { _ = try result.get() }
            #expect(took < .seconds(3))
        }
    }

    @Test func onAThreadMadeForBlockingTransfersRunInPlaceAndStillCancel() async throws {
        try await withTinyServer { server in
            let statuses = try await BlockingThread.task { [transport] () -> Result<[Int], HTTPTransportError> in
                do throws(HTTPTransportError) {
                    let first = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/peer"))
                    let second = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/peer"))
                    return .success([first.status, second.status, first.body == second.body ? 1 : 0])
                } catch {
                    return .failure(error)
                }
            }.value.get()
            #expect(statuses == [200, 200, 1])

            let slow = BlockingThread.task { [transport] () -> Result<HTTPResponse, HTTPTransportError> in
                do throws(HTTPTransportError) {
                    return .success(
                        try await transport.send(
                            HTTPRequest(method: "GET", url: server.baseURL + "/slow?s=5", timeout: .seconds(10))))
                } catch {
                    return .failure(error)
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            let (result, took) = await elapsed {
                slow.cancel()
                return await slow.value
            }
            #expect(throws: HTTPTransportError.failed("the request was cancelled")) { _ = try result.get() }
            #expect(took < .seconds(3))
        }
    }

    @Test func oversizedBodiesFail() async throws {
        let small = CurlHTTPTransport(maxBodyBytes: 100)
        try await withTinyServer { server in
            let fits = try await small.send(HTTPRequest(method: "GET", url: server.baseURL + "/big?n=100"))
            #expect(fits.body.count == 100)
            await #expect {
                try await small.send(HTTPRequest(method: "GET", url: server.baseURL + "/big?n=1000"))
            } throws: { error in
                guard case .failed(let message) = error as? HTTPTransportError else { return false }
                return message.contains("larger")
            }
        }
    }

    @Test func httpsVerifiesAgainstTheSystemStoreAndTheConfiguredBundle() async throws {
        let pki = try TestPKI.make()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        try await withTinyServer(tls: (pki.serverCert, pki.serverKey)) { server in
            let url = "https://127.0.0.1:\(server.port)/echo"
            // Not in the system store: refused, never silently accepted.
            await #expect {
                try await transport.send(HTTPRequest(method: "GET", url: url))
            } throws: { error in
                guard case .tls = error as? HTTPTransportError else { return false }
                return true
            }
            let trusting = CurlHTTPTransport(caBundlePath: pki.caCert)
            let trusted = try await trusting.send(HTTPRequest(method: "GET", url: url))
            #expect(trusted.status == 200)
            // The certificate names 127.0.0.1 only: another name for the same server is refused.
            await #expect {
                try await trusting.send(HTTPRequest(method: "GET", url: "https://localhost:\(server.port)/echo"))
            } throws: { error in
                guard case .tls = error as? HTTPTransportError else { return false }
                return true
            }
            // A missing bundle file is a TLS error too, not a fallback to no verification.
            let missing = CurlHTTPTransport(caBundlePath: pki.directory + "/missing.pem")
            await #expect(throws: HTTPTransportError.self) {
                try await missing.send(HTTPRequest(method: "GET", url: url))
            }
        }
    }

    @Test func onlyHTTPAndHTTPSAreSpoken() async throws {
        await #expect {
            try await transport.send(HTTPRequest(method: "GET", url: "file:///etc/passwd"))
        } throws: { error in
            guard case .failed = error as? HTTPTransportError else { return false }
            return true
        }
    }
}

/// A server that answers every request with an interim 100 Continue (with a header of its own)
/// before the real answer, written raw because Python's http.server cannot.
private let interimServerScript = #"""
    import argparse, os
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args):
            pass
        def do_GET(self):
            self.wfile.write(b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\nX-Both: interim\r\n\r\n"
                             b"HTTP/1.1 200 OK\r\nX-Final: yes\r\nX-Both: final\r\nContent-Length: 2\r\n\r\nok")

    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()
    """#

extension CurlTransportTests {
    @Test func onlyTheFinalResponsesHeadersCount() async throws {
        let script = try PythonServer.writeScript(interimServerScript, name: "interim_server.py")
        defer { try? FileManager.default.removeItem(atPath: (script as NSString).deletingLastPathComponent) }
        try await PythonServer.run(script: script, arguments: []) { server in
            let response = try await transport.send(HTTPRequest(method: "GET", url: server.baseURL + "/"))
            #expect(response.status == 200)
            #expect(response.body == Array("ok".utf8))
            #expect(response.headers["x-final"] == "yes")
            #expect(response.headers["x-both"] == "final")
            #expect(response.headers["x-interim"] == nil)
        }
    }
}

/// `CurlEasy.parseHeaders` on header blocks as the shim collects them.
@Suite struct HeaderParsingTests {
    private func parse(_ block: String) -> [String: String] {
        Array(block.utf8).withUnsafeBytes { CurlEasy.parseHeaders($0) }
    }

    @Test(arguments: [
        // (header block, expected headers)
        (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pending:  true \r\n\r\n",
            ["content-type": "application/json", "x-pending": "true"]
        ),
        // Repeated headers join in order; names compare case-insensitively.
        ("HTTP/1.1 303 See Other\r\nX-Twice: a\r\nx-twice: b\r\nX-TWICE:c\r\n\r\n", ["x-twice": "a, b, c"]),
        // Bare LF line ends; tabs trimmed; a value keeps its own colons.
        (
            "HTTP/1.1 202 Accepted\nLocation:\t http://heketi:8080/queue/1 \t\nEmpty:\n",
            ["location": "http://heketi:8080/queue/1", "empty": ""]
        ),
        // Status lines of any version are skipped; lines with no name or no colon are ignored.
        ("HTTP/2 200\r\n: no name\r\n  : spaces only\r\nno colon here\r\n\r\nA: 1", ["a": "1"]),
        // Spaces around the name go; UTF-8 in a value stays as it is; only ASCII letters fold.
        (" Name : grüße\r\nÄB-X: 1\r\n", ["name": "grüße", "Äb-x": "1"]),
        ("", [:]),
        ("\r\n\r\n", [:]),
    ])
    func headerBlocks(block: String, expected: [String: String]) {
        #expect(parse(block) == expected)
    }

    @Test func aLoneCarriageReturnIsNotALineEnd() {
        #expect(parse("A: 1\rB: 2\r\n") == ["a": "1\rB: 2"])
        #expect(parse("A: 1\r\r\nB: 2\r") == ["a": "1\r", "b": "2\r"])
    }
}

/// The shim loads libcurl with dlopen on first use; a library that cannot serve fails requests
/// with a message naming the package to install, which reaches the CSI caller as UNAVAILABLE.
@Suite struct CurlLibraryTests {
    @Test func theRealLibraryLoads() {
        #expect(CurlLibrary.name == "libcurl.so.4")
        #expect(CurlLibrary.loadFailure(of: CurlLibrary.name) == nil)
        #expect(CurlLibrary.initialise() == nil)
    }

    // A name as long as the real one: Heketi errors keep the first 200 characters of a reason.
    private let missing = "libnocurl.so.4"

    @Test func aMissingLibraryIsAnErrorThatSaysWhatToInstall() {
        let name = missing
        #expect(
            CurlLibrary.loadFailure(of: name)
                == "\(name) could not be loaded; install libcurl4 (Debian: apt-get install libcurl4) "
                + "(\(name): cannot open shared object file: No such file or directory)")
    }

    @Test func aLibraryWithoutLibcurlsFunctionsIsRefused() throws {
        // zlib is on every system that has libcurl, and has none of its functions.
        let message = try #require(CurlLibrary.loadFailure(of: "libz.so.1"))
        #expect(message.hasPrefix("libz.so.1 has no curl_global_init; install libcurl4 (Debian: apt-get install "))
        #expect(message.contains("undefined symbol: curl_global_init"))
    }

    @Test func theLoadFailureReachesTheCSICallerAsUnavailableWithTheFix() async throws {
        let failure = try #require(CurlLibrary.loadFailure(of: missing))
        // What CurlHTTPTransport.send throws when its library failed to load.
        let transport = ScriptedTransport { _, _ in .failure(.unusable(failure)) }
        let client = testClient(transport, runtime: ManualRuntime())
        do {
            _ = try await client.volumeIDs()
            Issue.record("the request succeeded without libcurl")
        } catch {
            let csi = error.csiError
            #expect(csi.code == .unavailable)
            #expect(csi.message.contains("could not be loaded; "))
            #expect(csi.message.contains("install libcurl4 (Debian: apt-get install libcurl4)"))
            #expect(csi.message.contains("fix the controller's image"))
            #expect(!csi.message.contains("Check resturl"))
        }
    }
}

/// A port nothing listens on (bound once by the kernel's choice, then released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestServerError("socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw TestServerError("bind failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI.
struct TestPKI {
    var directory: String
    var caCert: String
    var serverCert: String
    var serverKey: String

    static func make() throws -> TestPKI {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("heketi-pki-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = TestPKI(
            directory: directory, caCert: directory + "/ca.pem", serverCert: directory + "/server.pem",
            serverKey: directory + "/server.key")
        try openssl([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=heketi-test-ca",
            "-keyout", directory + "/ca.key", "-out", pki.caCert,
        ])
        try openssl([
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", pki.serverKey, "-out",
            directory + "/server.csr",
        ])
        try "subjectAltName=IP:127.0.0.1\n".write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", directory + "/server.csr", "-CA", pki.caCert, "-CAkey", directory + "/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", directory + "/san.ext", "-out", pki.serverCert,
        ])
        return pki
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestServerError("openssl \(arguments.first ?? "") failed with \(process.terminationStatus)")
        }
    }
}
