import CSICore
import FoundationEssentials
import Logging
import Synchronization
import Testing

@testable import Heketi

private let volumeID = "5c6f93f5ba6e4f51a4a87f4b3b8dd275"
private let createRequest = VolumeCreateRequest(sizeGiB: 1, name: "pvc-1", durability: .replicate(3), gid: 2000)

/// A create whose queue is pending `pending` times, then 303s once and 404s ever after (Heketi
/// delivers a result once).
private func createScript(pending: Int) -> ScriptedTransport {
    .routes { route, seen in
        switch route {
        case "POST /volumes": return Answer.accepted("q1")
        case "GET /queue/q1":
            if seen < pending { return Answer.pending }
            if seen == pending { return Answer.seeOther("/volumes/\(volumeID)") }
            return Answer.text(404, "Id not found")
        case "GET /volumes/\(volumeID)": return Answer.volume(id: volumeID)
        default: return nil
        }
    }
}

private func ms(_ values: Int...) -> [Duration] { values.map { .milliseconds($0) } }

@Suite struct ClientTests {
    @Test func createPostsPollsWithGrowingDelaysAndReadsTheVolume() async throws {
        let transport = createScript(pending: 5)
        let runtime = ManualRuntime()
        let volume = try await testClient(transport, runtime: runtime).createVolume(createRequest)

        #expect(volume.id == volumeID)
        #expect(volume.hosts == ["h1", "h2", "h3"])
        #expect(
            transport.summary
                == ["POST /volumes"] + Array(repeating: "GET /queue/q1", count: 6) + ["GET /volumes/\(volumeID)"])
        // The first poll goes out at once, then 2 ms, doubling.
        #expect(runtime.sleeps == ms(2, 4, 8, 16, 32))
        let post = transport.requests[0]
        #expect(post.headers.contains { $0 == ("Content-Type", "application/json") })
        #expect(
            String(decoding: post.body, as: UTF8.self)
                == #"{"durability":{"replicate":{"replica":3},"type":"replicate"},"gid":2000,"name":"pvc-1","size":1}"#)
        #expect(post.url == "http://heketi.test:8080/volumes")
        #expect(post.timeout == .seconds(30))
        #expect(post.connectTimeout == .seconds(5))
    }

    @Test func everyRequestCarriesItsOwnFreshTokenBoundToItsPath() async throws {
        let transport = createScript(pending: 3)
        _ = try await testClient(transport, runtime: ManualRuntime()).createVolume(createRequest)

        let tokens = transport.requests.map(\.authorization)
        #expect(Set(tokens).count == transport.requests.count, "a token was reused")
        var lastIssuedAt: Int64 = 0
        for request in transport.requests {
            let token = try #require(DecodedToken(authorization: request.authorization))
            #expect(token.iss == "admin")
            #expect(
                token.qsh == HeketiToken.qsh(method: request.method, path: ScriptedTransport.path(of: request.url)))
            #expect(token.exp == token.iat + 300)
            #expect(token.iat > lastIssuedAt)
            lastIssuedAt = token.iat
        }
        // The qsh of the poll and of the redirect target, independently computed (Python hashlib).
        let pollQSH = try #require(DecodedToken(authorization: transport.requests[1].authorization)).qsh
        #expect(pollQSH == HeketiToken.hex(SHA256Reference.digest("GET&/queue/q1")))
    }

    @Test func pollDelaysStopGrowingAtOneSecond() async throws {
        let runtime = ManualRuntime()
        _ = try await testClient(createScript(pending: 13), runtime: runtime).createVolume(createRequest)
        #expect(runtime.sleeps == ms(2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000, 1000))
    }

    @Test func throttledPostsAreRetriedWithJitteredBackoff() async throws {
        let transport = ScriptedTransport.routes { route, seen in
            switch route {
            case "POST /volumes": return seen < 3 ? Answer.busy : Answer.accepted("q1")
            case "GET /queue/q1": return Answer.seeOther("/volumes/\(volumeID)")
            case "GET /volumes/\(volumeID)": return Answer.volume(id: volumeID)
            default: return nil
            }
        }
        let runtime = ManualRuntime(random: 0.5)
        _ = try await testClient(transport, runtime: runtime).createVolume(createRequest)
        // d = 100, 200, 400 ms; jitter draws from [d/2, d], here at 0.75 d. Then an immediate poll.
        #expect(runtime.sleeps == ms(75, 150, 300))
        #expect(transport.summary.filter { $0 == "POST /volumes" }.count == 4)
    }

    @Test func jitterSpansHalfToFullDelay() async throws {
        for (random, expected) in [(0.0, 50), (0.999_999, 100)] {
            let transport = ScriptedTransport.routes { route, seen in
                route == "POST /volumes" && seen == 0 ? Answer.busy : Answer.text(400, "stop")
            }
            let runtime = ManualRuntime(random: random)
            await #expect(throws: HeketiError.self) {
                try await testClient(transport, runtime: runtime).createVolume(createRequest)
            }
            #expect(runtime.sleeps.first.map { abs(($0 - .milliseconds(expected)).milliseconds) <= 1 } == true)
        }
    }

    @Test func throttlingThatOutlastsTheBudgetIsReported() async throws {
        let transport = ScriptedTransport.routes { route, _ in route == "POST /volumes" ? Answer.busy : nil }
        let runtime = ManualRuntime()
        var configuration = HeketiClient.Configuration()
        configuration.operationTimeout = .seconds(20)
        let client = testClient(transport, runtime: runtime, configuration: configuration)
        await #expect {
            try await client.createVolume(createRequest)
        } throws: { error in
            guard case .throttled(let message) = error as? HeketiError else { return false }
            return message.contains("429")
        }
        #expect(runtime.elapsed <= .seconds(20))
        #expect(runtime.elapsed > .seconds(10))
        // 75, 150, 300, 600, 1200, 2400, 3750 (cap 5 s × 0.75) ... ms.
        #expect(runtime.sleeps.max() == .milliseconds(3750))
        #expect(transport.requests.count == runtime.sleeps.count + 1)
    }

    @Test func executorFailureIsOperationFailedWithHeketisText() async throws {
        let transport = ScriptedTransport.routes { route, seen in
            switch route {
            case "POST /volumes": return Answer.accepted("q1")
            case "GET /queue/q1":
                return seen == 0
                    ? Answer.pending
                    : Answer.text(
                        500,
                        "Unable to execute command on 10.0.0.11: volume create: pvc-1: failed: Host 10.0.0.12 is not in 'Peer in Cluster' state"
                    )
            default: return nil
            }
        }
        await #expect(
            throws: HeketiError.operationFailed(
                "Heketi could not create volume pvc-1: Unable to execute command on 10.0.0.11: volume create: pvc-1: "
                    + "failed: Host 10.0.0.12 is not in 'Peer in Cluster' state")
        ) {
            try await testClient(transport, runtime: ManualRuntime()).createVolume(createRequest)
        }
    }

    @Test func aQueueThatForgotTheOperationIsReportedAsLost() async throws {
        let transport = ScriptedTransport.routes { route, seen in
            switch route {
            case "POST /volumes": return Answer.accepted("q1")
            case "GET /queue/q1": return seen < 2 ? Answer.pending : Answer.text(404, "Id not found")
            default: return nil
            }
        }
        await #expect {
            try await testClient(transport, runtime: ManualRuntime()).createVolume(createRequest)
        } throws: { error in
            guard case .operationFailed(let message) = error as? HeketiError else { return false }
            return message.contains("lost track") && message.contains("restarted")
        }
        // No poll after the 404: it is final.
        #expect(transport.summary.filter { $0 == "GET /queue/q1" }.count == 3)
    }

    @Test func theQueueResultIsTakenOnceAndNeverAskedForAgain() async throws {
        // After the 303 the script answers 404 to the queue, like Heketi; the client must not
        // ask again, even when reading the volume fails once.
        let transport = ScriptedTransport.routes { route, seen in
            switch route {
            case "POST /volumes": return Answer.accepted("q1")
            case "GET /queue/q1":
                return seen == 0 ? Answer.seeOther("/volumes/\(volumeID)") : Answer.text(404, "Id not found")
            case "GET /volumes/\(volumeID)":
                return seen == 0 ? .failure(.cannotConnect("Connection refused")) : Answer.volume(id: volumeID)
            default: return nil
            }
        }
        let volume = try await testClient(transport, runtime: ManualRuntime()).createVolume(createRequest)
        #expect(volume.id == volumeID)
        #expect(
            transport.summary == [
                "POST /volumes", "GET /queue/q1", "GET /volumes/\(volumeID)", "GET /volumes/\(volumeID)",
            ])
    }

    @Test func aVolumeThatCannotBeReadAfterTheQueueIsNamedInTheError() async throws {
        let transport = ScriptedTransport.routes { route, _ in
            switch route {
            case "POST /volumes": return Answer.accepted("q1")
            case "GET /queue/q1": return Answer.seeOther("/volumes/\(volumeID)")
            case "GET /volumes/\(volumeID)": return Answer.text(503, "unavailable")
            default: return nil
            }
        }
        await #expect {
            try await testClient(transport, runtime: ManualRuntime()).createVolume(createRequest)
        } throws: { error in
            guard case .serverError(503, let message) = error as? HeketiError else { return false }
            return message.contains("/volumes/\(volumeID)")
        }
        #expect(transport.summary.filter { $0 == "GET /volumes/\(volumeID)" }.count == 3)
    }

    @Test func transientPollFailuresAreToleratedUpToALimit() async throws {
        let flaky = ScriptedTransport.routes { route, seen in
            switch route {
            case "POST /volumes": return Answer.accepted("q1")
            case "GET /queue/q1":
                return seen < 3 ? .failure(.timedOut("Operation timed out")) : Answer.seeOther("/volumes/\(volumeID)")
            case "GET /volumes/\(volumeID)": return Answer.volume(id: volumeID)
            default: return nil
            }
        }
        #expect(try await testClient(flaky, runtime: ManualRuntime()).createVolume(createRequest).id == volumeID)

        let dead = ScriptedTransport.routes { route, _ in
            route == "POST /volumes" ? Answer.accepted("q1") : .failure(.cannotConnect("Connection refused"))
        }
        await #expect {
            try await testClient(dead, runtime: ManualRuntime()).createVolume(createRequest)
        } throws: { error in
            guard case .unreachable = error as? HeketiError else { return false }
            return true
        }
        #expect(dead.summary.filter { $0 == "GET /queue/q1" }.count == 4)
    }

    @Test func anOperationStillPendingAtItsDeadlineTimesOut() async throws {
        let transport = ScriptedTransport.routes { route, _ in
            route == "POST /volumes" ? Answer.accepted("q1") : route == "GET /queue/q1" ? Answer.pending : nil
        }
        let runtime = ManualRuntime()
        var configuration = HeketiClient.Configuration()
        configuration.operationTimeout = .seconds(10)
        await #expect {
            try await testClient(transport, runtime: runtime, configuration: configuration).createVolume(createRequest)
        } throws: { error in
            guard case .timedOut(let message) = error as? HeketiError else { return false }
            return message.contains("may still complete")
        }
        // The last poll is at the deadline itself.
        #expect(runtime.elapsed == .seconds(10))
    }

    @Test func synchronousRefusalsEndTheOperationWithoutPolling() async throws {
        for (answer, expected) in [
            (Answer.text(500, "Failed to allocate new volume: Volume name 'pvc-1' already in use"), "nameInUse"),
            (Answer.text(500, "Failed to allocate new volume: No space"), "noSpace"),
            (Answer.text(400, "Invalid durability type"), "invalidRequest"),
        ] {
            let transport = ScriptedTransport.routes { route, _ in route == "POST /volumes" ? answer : nil }
            await #expect {
                try await testClient(transport, runtime: ManualRuntime()).createVolume(createRequest)
            } throws: { error in
                "\(error)".hasPrefix(expected)
            }
            #expect(transport.summary == ["POST /volumes"])
        }
    }

    @Test func deleteWaitsForTheQueue204() async throws {
        let transport = ScriptedTransport.routes { route, seen in
            switch route {
            case "DELETE /volumes/\(volumeID)": return Answer.accepted("qd")
            case "GET /queue/qd": return seen == 0 ? Answer.pending : Answer.noContent
            default: return nil
            }
        }
        try await testClient(transport, runtime: ManualRuntime()).deleteVolume(id: volumeID)
        #expect(transport.summary == ["DELETE /volumes/\(volumeID)", "GET /queue/qd", "GET /queue/qd"])
    }

    @Test func deleteOfAnUnknownOrBusyVolume() async throws {
        let unknown = ScriptedTransport.routes { _, _ in Answer.text(404, "Id not found") }
        await #expect {
            try await testClient(unknown, runtime: ManualRuntime()).deleteVolume(id: volumeID)
        } throws: { error in
            guard case .notFound = error as? HeketiError else { return false }
            return true
        }
        let busy = ScriptedTransport.routes { _, _ in
            Answer.text(500, "Unable to delete volume: The target exists, contains other items, or is in use.")
        }
        await #expect {
            try await testClient(busy, runtime: ManualRuntime()).deleteVolume(id: volumeID)
        } throws: { error in
            guard case .operationPending = error as? HeketiError else { return false }
            return true
        }
    }

    @Test func expandAndCloneFollowTheirRedirects() async throws {
        let cloneID = "0123456789abcdef0123456789abcdef"
        let transport = ScriptedTransport.routes { route, _ in
            switch route {
            case "POST /volumes/\(volumeID)/expand": return Answer.accepted("qe")
            case "GET /queue/qe": return Answer.seeOther("/volumes/\(volumeID)")
            case "POST /volumes/\(volumeID)/clone": return Answer.accepted("qc")
            case "GET /queue/qc": return Answer.seeOther("http://heketi.test:8080/volumes/\(cloneID)")
            case "GET /volumes/\(volumeID)": return Answer.volume(id: volumeID, size: 3)
            case "GET /volumes/\(cloneID)": return Answer.volume(id: cloneID, name: "pvc-2", size: 3)
            default: return nil
            }
        }
        let client = testClient(transport, runtime: ManualRuntime())
        #expect(try await client.expandVolume(id: volumeID, deltaGiB: 2).sizeGiB == 3)
        #expect(try await client.cloneVolume(id: volumeID, name: "pvc-2").id == cloneID)
        #expect(String(decoding: transport.requests[0].body, as: UTF8.self) == #"{"expand_size":2}"#)
        #expect(String(decoding: transport.requests[3].body, as: UTF8.self) == #"{"name":"pvc-2"}"#)
    }

    @Test func aRedirectToAnotherHostIsNotFollowed() async throws {
        let transport = ScriptedTransport.routes { route, _ in
            switch route {
            case "POST /volumes": return Answer.accepted("q1")
            case "GET /queue/q1": return Answer.seeOther("http://evil.example/volumes/\(volumeID)")
            default: return nil
            }
        }
        await #expect(throws: HeketiError.self) {
            try await testClient(transport, runtime: ManualRuntime()).createVolume(createRequest)
        }
        #expect(transport.requests.allSatisfy { $0.url.hasPrefix("http://heketi.test:8080/") })
    }

    @Test func aUserIssuerNeverStartsACreateItCouldNotFollow() async throws {
        let transport = createScript(pending: 0)
        let client = testClient(
            transport, runtime: ManualRuntime(),
            endpoint: HeketiEndpoint(url: "http://heketi.test:8080", user: "user", key: "k"))
        await #expect {
            try await client.createVolume(createRequest)
        } throws: { error in
            guard case .unauthorized(let message) = error as? HeketiError else { return false }
            return message.contains("restuser 'admin'")
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func withoutAKeyNoAuthorizationIsSent() async throws {
        let transport = ScriptedTransport.routes { _, _ in Answer.json(#"{"volumes":["ab","cd"]}"#) }
        let client = testClient(
            transport, runtime: ManualRuntime(), endpoint: HeketiEndpoint(url: "http://h:1", user: "admin", key: ""))
        #expect(try await client.volumeIDs() == ["ab", "cd"])
        #expect(transport.requests[0].authorization == nil)
    }

    @Test func malformedIDsAreNotFoundWithoutAsking() async throws {
        let transport = ScriptedTransport.routes { _, _ in Answer.volume(id: volumeID) }
        let client = testClient(transport, runtime: ManualRuntime())
        for id in ["", "../clusters", "ab/cd", "xyz?"] {
            await #expect {
                try await client.volume(id: id)
            } throws: { error in
                guard case .notFound = error as? HeketiError else { return false }
                return true
            }
            await #expect(throws: HeketiError.self) { try await client.deleteVolume(id: id) }
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func anUnusableURLIsAnInvalidRequest() async throws {
        let transport = ScriptedTransport.routes { _, _ in nil }
        let client = testClient(
            transport, runtime: ManualRuntime(), endpoint: HeketiEndpoint(url: "heketi:8080", user: "admin", key: "k"))
        await #expect {
            try await client.volumeIDs()
        } throws: { error in
            guard case .invalidRequest(let message) = error as? HeketiError else { return false }
            return message.contains("resturl")
        }
        #expect(transport.requests.isEmpty)
    }

    @Test func readsParseClustersAndNodes() async throws {
        let transport = ScriptedTransport.routes { route, _ in
            switch route {
            case "GET /clusters": return Answer.json(#"{"clusters":["c1"]}"#)
            case "GET /clusters/c1": return Answer.json(#"{"id":"c1","nodes":["a1"],"volumes":[]}"#)
            case "GET /nodes/a1":
                return Answer.json(
                    #"{"id":"a1","cluster":"c1","state":"online","hostnames":{"manage":["m"],"storage":["s"]},"devices":[{"name":"/dev/vdb","storage":{"total":100,"free":60,"used":40},"state":"online"}]}"#
                )
            case "GET /volumes": return Answer.json(#"{"volumes":null}"#)
            default: return nil
            }
        }
        let client = testClient(transport, runtime: ManualRuntime())
        #expect(try await client.clusterIDs() == ["c1"])
        #expect(try await client.cluster(id: "c1").nodeIDs == ["a1"])
        let node = try await client.node(id: "a1")
        #expect(node.storageHostnames == ["s"] && node.devices.first?.freeKiB == 60 && node.online)
        #expect(try await client.volumeIDs() == [])
    }

    @Test func garbageFromHeketiIsAServerError() async throws {
        let transport = ScriptedTransport.routes { _, _ in Answer.json("<html>proxy error</html>") }
        await #expect {
            try await testClient(transport, runtime: ManualRuntime()).volume(id: volumeID)
        } throws: { error in
            guard case .serverError(200, let message) = error as? HeketiError else { return false }
            return message.contains("could not be read") && !message.contains("html")
        }
    }

    @Test func mutatingOperationsRespectTheLimiter() async throws {
        let inFlight = Mutex((now: 0, peak: 0))
        let transport = ScriptedTransport.routes { route, seen in
            if route == "POST /volumes" {
                inFlight.withLock {
                    $0.now += 1
                    $0.peak = max($0.peak, $0.now)
                }
                return Answer.accepted("q\(seen)")
            }
            if route.hasPrefix("GET /queue/") {
                if seen < 3 { return Answer.pending }
                inFlight.withLock { $0.now -= 1 }
                return Answer.seeOther("/volumes/\(volumeID)")
            }
            return route == "GET /volumes/\(volumeID)" ? Answer.volume(id: volumeID) : nil
        }
        let limiter = AsyncLimiter(limit: 2)
        let client = testClient(
            transport, runtime: ManualRuntime(), configuration: HeketiClient.Configuration(mutationLimiter: limiter))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 { group.addTask { _ = try await client.createVolume(createRequest) } }
            try await group.waitForAll()
        }
        #expect(inFlight.withLock { $0.peak } <= 2)
        #expect(inFlight.withLock { $0.now } == 0)
        #expect(limiter.availablePermits == 2)
    }

    @Test func cancellationEndsTheWaitAsTimedOut() async throws {
        let transport = ScriptedTransport.routes { route, _ in
            route == "POST /volumes" ? Answer.accepted("q1") : route == "GET /queue/q1" ? Answer.pending : nil
        }
        let client = HeketiClient(
            endpoint: HeketiEndpoint(url: "http://heketi.test:8080", user: "admin", key: "k"), transport: transport,
            logger: Logger(label: "t"))
        let task = Task { try await client.createVolume(createRequest) }
        while transport.requests.count < 3 { await Task.yield() }
        task.cancel()
        await #expect {
            try await task.value
        } throws: { error in
            guard case .timedOut = error as? HeketiError else { return false }
            return true
        }
        #expect(client.configuration.mutationLimiter.availablePermits == 8)
    }

    @Test func noKeyOrTokenEverReachesTheLogsOrErrors() async throws {
        let (logger, lines) = CapturingLogHandler.logger()
        let key = "sentinel-KEY-42"
        let transport = ScriptedTransport.routes { route, seen in
            switch route {
            case "POST /volumes": return seen == 0 ? Answer.busy : Answer.accepted("q1")
            case "GET /queue/q1":
                return seen == 0 ? .failure(.timedOut("slow")) : Answer.seeOther("/volumes/\(volumeID)")
            case "GET /volumes/\(volumeID)": return Answer.volume(id: volumeID)
            case "DELETE /volumes/\(volumeID)": return Answer.text(401, "Invalid JWT token: signature is invalid")
            default: return nil
            }
        }
        let client = testClient(transport, runtime: ManualRuntime(), logger: logger)
        _ = try await client.createVolume(createRequest)
        var errors: [String] = []
        do { try await client.deleteVolume(id: volumeID) } catch { errors.append("\(error) \(error.csiError)") }
        do { _ = try await client.volume(id: "abcdef") } catch { errors.append("\(error) \(error.csiError)") }

        let log = lines.joined
        #expect(lines.all.count > 5)
        #expect(log.contains("/queue/q1"))
        #expect(!log.contains(key))
        #expect(!errors.joined().contains(key))
        for request in transport.requests {
            let token = try #require(request.authorization).dropFirst("Bearer ".count)
            let signature = try #require(token.split(separator: ".").last)
            #expect(!log.contains(signature))
            #expect(!errors.joined().contains(signature))
        }
        #expect(!log.lowercased().contains("bearer"))
        #expect(!log.lowercased().contains("authorization"))
    }
}

/// SHA-256 known answers computed with Python's hashlib, so the qsh check does not trust the
/// code under test.
enum SHA256Reference {
    static func digest(_ text: String) -> [UInt8] {
        let known: [String: String] = [
            "GET&/queue/q1": "3c2bf07268e72f423904672fd1e85f79796a38d0fa8b0be285bf80dc296b424a"
        ]
        let hex = known[text]!
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }
}
