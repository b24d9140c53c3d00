import CSICore
import CurlTransport
import Foundation

/// A Python server process for integration tests. `run` always stops it, also when the body
/// throws; a watchdog thread inside the child ends it if this test process dies first (the
/// child is reparented, so its parent PID changes).
struct PythonServer: Sendable {
    let port: Int
    let directory: URL

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Runs `script` (a file path) with `arguments` through a watchdog wrapper, waits for the
    /// port it writes to `--port-file`, runs `body`, then stops the process.
    static func run<T>(
        script: String, arguments: [String], environment: [String: String] = [:],
        _ body: (PythonServer) async throws -> T
    ) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "heketi-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let portFile = directory.appendingPathComponent("port")
        let logFile = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", watchdog, script] + arguments + ["--port-file", portFile.path]
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        let log = try FileHandle(forWritingTo: logFile)
        process.standardOutput = log
        process.standardError = log
        try process.run()

        do {
            let port = try await waitForPort(portFile, process: process, log: logFile)
            let result = try await body(PythonServer(port: port, directory: directory))
            await stop(process)
            return result
        } catch {
            await stop(process)
            throw error
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL after 3 s.
    static func stop(_ process: Process) async {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<300 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for _ in 0..<100 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    private static func waitForPort(_ file: URL, process: Process, log: URL) async throws -> Int {
        for _ in 0..<1000 {
            if let text = try? String(contentsOf: file, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), port > 0
            {
                return port
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        throw TestServerError("server did not start: \(output.suffix(2000))")
    }

    /// Runs the script as __main__ next to a daemon thread that exits the process once its
    /// parent (this test process) is gone. The signal mask is cleared first: the child inherits
    /// it from the spawning thread, and Dispatch's worker threads block SIGTERM.
    private static let watchdog = """
        import os, runpy, signal, sys, threading, time
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        parent = os.getppid()
        def watch():
            while True:
                time.sleep(0.5)
                if os.getppid() != parent:
                    os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
        sys.argv = sys.argv[1:]
        sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
        runpy.run_path(sys.argv[0], run_name="__main__")
        """

    /// A script file written into a fresh temporary directory (for servers embedded in tests).
    static func writeScript(_ text: String, name: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "heketi-scripts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }
}

struct TestServerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Paths inside this repository.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let heketiServer = root.appendingPathComponent("Tests/heketi-server/heketi_server.py").path
}

/// A small threaded HTTP(S) server for transport tests (Python standard library only).
///
/// Routes: `/redirect` → 303 Location /target; `/echo` → JSON of method, path, header names and
/// values, body length; `/slow?s=N` → waits N seconds; `/big?n=N` → N bytes; `/peer` → the client's
/// source port (connection reuse shows as the same port).
let tinyServerScript = #"""
    import argparse, json, os, ssl, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlparse, parse_qs

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *args):
            pass
        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def handle_any(self):
            url = urlparse(self.path)
            query = parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if url.path == "/redirect":
                self.reply(303, headers=[("Location", "/target"), ("X-Pending", "false"), ("X-Twice", "a"), ("X-Twice", "b")])
            elif url.path == "/echo":
                data = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                        "body": body.decode("latin-1")}
                self.reply(200, json.dumps(data).encode(), [("Content-Type", "application/json")])
            elif url.path == "/slow":
                time.sleep(float(query.get("s", ["1"])[0]))
                self.reply(200, b"slow")
            elif url.path == "/big":
                self.reply(200, b"x" * int(query.get("n", ["1000"])[0]))
            elif url.path == "/peer":
                self.reply(200, str(self.client_address[1]).encode())
            else:
                self.reply(404, b"no such path")
        do_GET = do_POST = do_DELETE = do_PUT = handle_any

    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    # A deep accept queue: the default of 5 drops SYNs of a burst, which then wait 1 s to retry.
    ThreadingHTTPServer.request_queue_size = 64
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()
    """#
