import CSICore
import CurlTransport
import Foundation
import Logging
import Testing

@testable import Heketi

// HeketiClient + CurlHTTPTransport against the Heketi-compatible test server
// (Tests/heketi-server, mock mode). Each test runs its own server, stopped even on failure.

private let adminKey = "admin-sentinel-\(UUID().uuidString)"
private let userKey = "user-sentinel-\(UUID().uuidString)"

private struct HeketiServer {
    let process: PythonServer
    let transport = CurlHTTPTransport()

    var url: String { process.baseURL }

    func client(
        user: String = "admin", key: String? = nil, logger: Logger = Logger(label: "heketi-it"),
        configure: (inout HeketiClient.Configuration) -> Void = { _ in }
    ) -> HeketiClient {
        var configuration = HeketiClient.Configuration(
            requestTimeout: .seconds(10), connectTimeout: .seconds(2), operationTimeout: .seconds(30),
            throttleBackoff: .init(initial: .milliseconds(20), multiplier: 2, maximum: .milliseconds(200)))
        configure(&configuration)
        return HeketiClient(
            endpoint: HeketiEndpoint(url: url, user: user, key: key ?? (user == "admin" ? adminKey : userKey)),
            transport: transport, logger: logger, configuration: configuration)
    }

    /// The server's unauthenticated /_test/ API.
    @discardableResult
    func testAPI(_ method: String, _ path: String, _ json: String = "") async throws -> [String: Any] {
        let response = try await transport.send(
            HTTPRequest(
                method: method, url: url + path, headers: [("Content-Type", "application/json")],
                body: Array(json.utf8)))
        guard response.status == 200 else {
            throw TestServerError(
                "\(method) \(path) → \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:]
    }

    func faults(_ json: String) async throws { try await testAPI("POST", "/_test/faults", json) }

    /// Heketi requests per route template, as the server counted them.
    func requestCounts() async throws -> [String: Int] {
        (try await testAPI("GET", "/_test/requests")["counts"] as? [String: Int]) ?? [:]
    }

    static func run<T>(_ arguments: [String] = [], _ body: (HeketiServer) async throws -> T) async throws -> T {
        try await PythonServer.run(
            script: Repository.heketiServer,
            arguments: ["--listen", "127.0.0.1:0", "--mode", "mock"] + arguments,
            environment: ["HEKETI_ADMIN_KEY": adminKey, "HEKETI_USER_KEY": userKey]
        ) { process in
            try await body(HeketiServer(process: process))
        }
    }
}

private func isCase(_ error: any Error, _ name: String) -> Bool {
    guard let error = error as? HeketiError else { return false }
    return "\(error)".hasPrefix(name + "(")
}

private func messageOf(_ error: any Error) -> String {
    guard let error = error as? HeketiError else { return "\(error)" }
    return error.csiError.message
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct HeketiServerIntegrationTests {
    @Test func createGetExpandCloneDeleteRoundTrip() async throws {
        try await HeketiServer.run { server in
            let (logger, lines) = CapturingLogHandler.logger()
            let client = server.client(logger: logger)
            let created = try await client.createVolume(
                VolumeCreateRequest(
                    sizeGiB: 1, name: "pvc-round-trip", durability: .replicate(3), gid: 2000,
                    glusterVolumeOptions: ["performance.read-ahead off"], snapshotFactor: 1.5))
            #expect(created.name == "pvc-round-trip")
            #expect(created.sizeGiB == 1)
            #expect(created.gid == 2000)
            #expect(created.durability == .replicate(3))
            #expect(created.hosts.count == 3)
            #expect(created.glusterVolumeOptions == ["performance.read-ahead off"])
            #expect(created.snapshotFactor == 1.5)
            #expect(created.brickCount == 3)
            #expect(try await client.volume(id: created.id) == created)
            #expect(try await client.volumeIDs().contains(created.id))

            let expanded = try await client.expandVolume(id: created.id, deltaGiB: 2)
            #expect(expanded.id == created.id)
            #expect(expanded.sizeGiB == 3)
            #expect(expanded.brickCount > created.brickCount)

            let clone = try await client.cloneVolume(id: created.id, name: "pvc-round-trip-clone")
            #expect(clone.id != created.id)
            #expect(clone.name == "pvc-round-trip-clone")
            #expect(clone.sizeGiB == 3)
            #expect(clone.gid == 2000)

            let clusters = try await client.clusterIDs()
            #expect(clusters.count == 1)
            let cluster = try await client.cluster(id: clusters[0])
            #expect(Set(cluster.volumeIDs) == [created.id, clone.id])
            let node = try await client.node(id: cluster.nodeIDs[0])
            #expect(node.online && node.devices.first.map { $0.freeKiB < $0.totalKiB } == true)

            try await client.deleteVolume(id: clone.id)
            try await client.deleteVolume(id: created.id)
            await #expect { try await client.volume(id: created.id) } throws: { isCase($0, "notFound") }
            await #expect { try await client.deleteVolume(id: created.id) } throws: { isCase($0, "notFound") }
            #expect(try await client.volumeIDs().isEmpty)

            // Four operations, each one POST/DELETE and few polls: the mock finishes in about a
            // millisecond and the first poll comes 2 ms after the 202.
            let counts = try await server.requestCounts()
            #expect(counts["GET /queue/{id}", default: 0] >= 4)
            #expect(counts["GET /queue/{id}", default: 0] <= 20)
            #expect(!lines.joined.contains(adminKey))
        }
    }

    @Test func aDuplicateNameIsNameInUse() async throws {
        try await HeketiServer.run { server in
            let client = server.client()
            let request = VolumeCreateRequest(sizeGiB: 1, name: "pvc-dup", durability: .none)
            _ = try await client.createVolume(request)
            await #expect { try await client.createVolume(request) } throws: { error in
                isCase(error, "nameInUse") && "\(error)".contains("pvc-dup")
            }
        }
    }

    @Test func anUnknownIDIsNotFound() async throws {
        try await HeketiServer.run { server in
            let client = server.client()
            let unknown = "0123456789abcdef0123456789abcdef"
            await #expect { try await client.volume(id: unknown) } throws: { isCase($0, "notFound") }
            await #expect { try await client.deleteVolume(id: unknown) } throws: { isCase($0, "notFound") }
            await #expect { try await client.expandVolume(id: unknown, deltaGiB: 1) } throws: { isCase($0, "notFound") }
        }
    }

    @Test func aWrongKeyIsUnauthorizedAndSaysSo() async throws {
        try await HeketiServer.run { server in
            let client = server.client(key: "not-the-admin-key")
            await #expect { try await client.volumeIDs() } throws: { error in
                isCase(error, "unauthorized") && messageOf(error).contains("does not match")
                    && messageOf(error).contains("key 'key'") && !messageOf(error).contains("not-the-admin-key")
            }
            let unknownUser = server.client(user: "root", key: adminKey)
            await #expect { try await unknownUser.volumeIDs() } throws: { error in
                isCase(error, "unauthorized") && messageOf(error).contains("does not know user 'root'")
            }
        }
    }

    @Test func theUserIssuerOnAnAdminPathIsToldToUseAdmin() async throws {
        try await HeketiServer.run { server in
            let client = server.client(user: "user")
            let listed = try await client.volumeIDs()  // `user` may list
            #expect(listed.isEmpty)
            await #expect { try await client.volume(id: "0123456789abcdef0123456789abcdef") } throws: { error in
                isCase(error, "unauthorized") && messageOf(error).contains("restuser 'admin'")
            }
            await #expect { try await client.clusterIDs() } throws: { isCase($0, "unauthorized") }
            await #expect {
                try await client.createVolume(VolumeCreateRequest(sizeGiB: 1, name: "pvc-user", durability: .none))
            } throws: { isCase($0, "unauthorized") }
            // The refused create never reached Heketi, so no orphan volume exists.
            let counts = try await server.requestCounts()
            #expect(counts["POST /volumes"] == nil)
            let volumes = try await server.client().volumeIDs()
            #expect(volumes.isEmpty)
        }
    }

    @Test func throttledOperationsAreRetriedUntilTheySucceed() async throws {
        try await HeketiServer.run(["--max-inflight", "1"]) { server in
            try await server.faults(#"{"op_delay_ms": 150}"#)
            // The client's own limiter lets 4 through, so Heketi (limit 1) answers 429s.
            let client = server.client { $0.mutationLimiter = AsyncLimiter(limit: 4) }
            let volumes = try await withThrowingTaskGroup(of: HeketiVolume.self) { group in
                for index in 0..<4 {
                    group.addTask {
                        try await client.createVolume(
                            VolumeCreateRequest(sizeGiB: 1, name: "pvc-busy-\(index)", durability: .none))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(volumes.map(\.name)).count == 4)
            #expect(try await server.requestCounts()["POST /volumes", default: 0] > 4)
        }
    }

    @Test func theLimiterKeepsBulkCreatesUnderHeketisLimit() async throws {
        try await HeketiServer.run(["--max-inflight", "2"]) { server in
            try await server.faults(#"{"op_delay_ms": 50}"#)
            let client = server.client { $0.mutationLimiter = AsyncLimiter(limit: 2) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<6 {
                    group.addTask {
                        _ = try await client.createVolume(
                            VolumeCreateRequest(sizeGiB: 1, name: "pvc-bulk-\(index)", durability: .none))
                    }
                }
                try await group.waitForAll()
            }
            // No 429 at all: exactly one POST per volume.
            #expect(try await server.requestCounts()["POST /volumes"] == 6)
        }
    }

    @Test func anExecutorFailureIsOperationFailedWithItsText() async throws {
        try await HeketiServer.run { server in
            try await server.faults(#"{"fail_next_executor": 1, "executor_error": "disk on fire"}"#)
            let client = server.client()
            await #expect {
                try await client.createVolume(VolumeCreateRequest(sizeGiB: 1, name: "pvc-fail", durability: .none))
            } throws: { error in
                isCase(error, "operationFailed") && "\(error)".contains("disk on fire")
            }
            // Heketi rolled it back: the name is free again.
            _ = try await client.createVolume(VolumeCreateRequest(sizeGiB: 1, name: "pvc-fail", durability: .none))
        }
    }

    @Test func deletingWithPeersDownFails() async throws {
        try await HeketiServer.run { server in
            let client = server.client()
            let volume = try await client.createVolume(
                VolumeCreateRequest(sizeGiB: 1, name: "pvc-peers", durability: .replicate(3)))
            try await server.faults(#"{"peers_down": true}"#)
            await #expect { try await client.deleteVolume(id: volume.id) } throws: { error in
                isCase(error, "operationFailed") && "\(error)".contains("peers are down")
                    && (error as? HeketiError)?.csiError.code == .unavailable
            }
            try await server.faults(#"{"peers_down": false}"#)
            try await client.deleteVolume(id: volume.id)
        }
    }

    @Test func aSecondDeleteWhileOneIsPendingIsOperationPending() async throws {
        try await HeketiServer.run { server in
            let client = server.client()
            let volume = try await client.createVolume(
                VolumeCreateRequest(sizeGiB: 1, name: "pvc-twice", durability: .none))
            try await server.faults(#"{"op_delay_ms": 1000}"#)
            let first = Task { try await client.deleteVolume(id: volume.id) }
            try await Task.sleep(for: .milliseconds(300))
            await #expect { try await client.deleteVolume(id: volume.id) } throws: { isCase($0, "operationPending") }
            try await first.value
        }
    }

    @Test func aHeketiRestartDuringAnOperationIsReportedAsLost() async throws {
        try await HeketiServer.run { server in
            try await server.faults(#"{"op_delay_ms": 1500}"#)
            let client = server.client()
            let create = Task {
                try await client.createVolume(VolumeCreateRequest(sizeGiB: 1, name: "pvc-restart", durability: .none))
            }
            try await Task.sleep(for: .milliseconds(400))
            try await server.testAPI("POST", "/_test/restart")
            await #expect { try await create.value } throws: { error in
                isCase(error, "operationFailed") && "\(error)".contains("lost track")
            }
        }
    }

    @Test func aSlowHeketiTimesOut() async throws {
        try await HeketiServer.run { server in
            try await server.faults(#"{"response_delay_ms": 2000}"#)
            let client = server.client { $0.requestTimeout = .milliseconds(300) }
            let start = ContinuousClock.now
            await #expect { try await client.volumeIDs() } throws: { error in
                isCase(error, "timedOut") && (error as? HeketiError)?.csiError.code == .deadlineExceeded
            }
            #expect(ContinuousClock.now - start < .milliseconds(1500))
        }
    }

    @Test func anOperationLongerThanItsBudgetTimesOut() async throws {
        try await HeketiServer.run { server in
            try await server.faults(#"{"op_delay_ms": 3000}"#)
            let client = server.client { $0.operationTimeout = .milliseconds(500) }
            await #expect {
                try await client.createVolume(VolumeCreateRequest(sizeGiB: 1, name: "pvc-slow", durability: .none))
            } throws: { isCase($0, "timedOut") }
        }
    }

    @Test func refusedConnectionsAreUnreachable() async throws {
        let port = try freePort()
        let client = HeketiClient(
            endpoint: HeketiEndpoint(url: "http://127.0.0.1:\(port)", user: "admin", key: adminKey),
            transport: CurlHTTPTransport(), logger: Logger(label: "heketi-it"))
        await #expect { try await client.volumeIDs() } throws: { error in
            isCase(error, "unreachable") && (error as? HeketiError)?.csiError.code == .unavailable
                && messageOf(error).contains("127.0.0.1:\(port)")
        }
    }
}
