import CSICore
import Glibc
import Logging
import Synchronization
import Testing

@testable import Kubernetes

/// A Kubernetes API in memory, as the transport sees it: PV lists in pages, watches scripted per
/// call, and merge patches of the GID annotation, with answers a test can override.
final class FakeAPI: HTTPStreamingTransport {
    struct State {
        var volumes: [String: String] = [:]  // name → JSON object
        var listStatus: Int = 200
        var patchAnswers: [Int] = []  // statuses for the next patches, then 200
        var patches: [(name: String, body: String)] = []
        var requests: [String] = []
        /// Each watch call takes the next script: lines to send (then the stream ends).
        var watchScripts: [[String]] = []
        var watchResourceVersions: [String] = []
        /// HTTP statuses for the next watches (with a Status body), before the scripts.
        var watchStatus: [Int] = []
    }

    let state = Mutex(State())

    func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        let path = String(request.url.dropFirst("https://api.test:6443".count))
        state.withLock { $0.requests.append("\(request.method) \(path)") }
        if request.method == "GET" {
            let (status, names, volumes) = state.withLock { ($0.listStatus, $0.volumes.keys.sorted(), $0.volumes) }
            guard status == 200 else { return Self.status(status, "list refused") }
            let offset = Self.query(path, "continue").flatMap { Int($0) } ?? 0
            let page = Array(names.dropFirst(offset).prefix(2))
            let next = offset + 2 < names.count ? String(offset + 2) : ""
            let items = page.map { volumes[$0]! }.joined(separator: ",")
            return HTTPResponse(
                status: 200,
                body: Array(
                    #"{"kind":"PersistentVolumeList","metadata":{"resourceVersion":"100","continue":"\#(next)"},"items":[\#(items)]}"#
                        .utf8))
        }
        let name = String(path.split(separator: "/").last!)
        let body = String(decoding: request.body, as: UTF8.self)
        let answer = state.withLock { state -> Int in
            state.patches.append((name, body))
            return state.patchAnswers.isEmpty ? 200 : state.patchAnswers.removeFirst()
        }
        return answer == 200 ? HTTPResponse(status: 200, body: Array("{}".utf8)) : Self.status(answer, "patch refused")
    }

    func stream(
        _ request: HTTPRequest, onData: @escaping @Sendable (Int, [UInt8]) -> Bool
    ) async throws(HTTPTransportError) -> HTTPResponse {
        let script = state.withLock { state -> [String]? in
            state.requests.append("WATCH \(request.url)")
            state.watchResourceVersions.append(Self.query(request.url, "resourceVersion") ?? "")
            if !state.watchStatus.isEmpty { return ["status \(state.watchStatus.removeFirst())"] }
            return state.watchScripts.isEmpty ? nil : state.watchScripts.removeFirst()
        }
        if let first = script?.first, first.hasPrefix("status "), let code = Int(first.dropFirst(7)) {
            let body = Self.status(code, "watch refused").body
            _ = onData(code, body)
            return HTTPResponse(status: code)
        }
        guard let script else {
            // No script left: hold the watch open until the test ends it.
            try? await Task.sleep(for: .seconds(3600))
            throw .failed("cancelled")
        }
        // Split each line over two pieces, as a network would.
        for line in script {
            let bytes = Array((line + "\n").utf8)
            let half = bytes.count / 2
            if !onData(200, Array(bytes[..<half])) || !onData(200, Array(bytes[half...])) { throw .failed("stopped") }
        }
        return HTTPResponse(status: 200)
    }

    /// The value of `key` in the URL's query.
    static func query(_ url: String, _ key: String) -> String? {
        guard let question = url.firstIndex(of: "?") else { return nil }
        for pair in url[url.index(after: question)...].split(separator: "&") where pair.hasPrefix(key + "=") {
            return String(pair.dropFirst(key.count + 1))
        }
        return nil
    }

    static func status(_ code: Int, _ message: String) -> HTTPResponse {
        HTTPResponse(status: code, body: Array(#"{"kind":"Status","code":\#(code),"message":"\#(message)"}"#.utf8))
    }

    static func volume(
        _ name: String, driver: String = "glusterfs.csi.heketi.io", gid: String? = "40000",
        annotated: String? = nil, version: String = "1"
    ) -> String {
        let annotations = annotated.map { #","annotations":{"pv.beta.kubernetes.io/gid":"\#($0)"}"# } ?? ""
        let attributes = gid.map { #""gid":"\#($0)","glusterVolume":"vol""# } ?? #""glusterVolume":"vol""#
        return
            #"{"metadata":{"name":"\#(name)","resourceVersion":"\#(version)"\#(annotations)},"spec":{"csi":{"driver":"\#(driver)","volumeHandle":"v1:x","volumeAttributes":{\#(attributes)}}}}"#
    }

    var patchedNames: [String] { state.withLock { $0.patches.map(\.name) } }
}

@Suite struct KubernetesTests {
    let directory: String

    init() throws {
        var template = Array("/tmp/kube-test-XXXXXX".utf8CString)
        directory = String(cString: mkdtemp(&template)!)
        let file = fopen(directory + "/token", "w")!
        fputs("token-1\n", file)
        fclose(file)
    }

    func reconciler(_ api: FakeAPI) -> GIDAnnotationReconciler {
        let config = InClusterConfig(
            apiURL: "https://api.test:6443", tokenPath: directory + "/token", caBundlePath: directory + "/ca.crt")
        return GIDAnnotationReconciler(
            client: KubernetesClient(config: config, transport: api, userAgent: "test"),
            driverName: "glusterfs.csi.heketi.io", logger: Logger(label: "test"), pageSize: 2,
            backoff: Backoff(first: .milliseconds(20), maximum: .milliseconds(100)))
    }

    /// Runs the reconciler until `done` holds (or 10 s pass), then stops it.
    func run(_ api: FakeAPI, until done: @escaping @Sendable () -> Bool) async {
        let task = Task { await reconciler(api).run() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !done(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        await task.value
    }

    @Test func inClusterConfigComesFromTheEnvironmentAndTheServiceAccount() throws {
        let found = try InClusterConfig.load(
            serviceAccountDirectory: directory,
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"]
        ).get()
        #expect(found.apiURL == "https://[fd00::1]:6443")
        #expect(try found.token() == "token-1")
        let outside = InClusterConfig.load(serviceAccountDirectory: directory, environment: [:])
        #expect((try? outside.get()) == nil)
        let noToken = InClusterConfig.load(
            serviceAccountDirectory: directory + "/missing", environment: ["KUBERNETES_SERVICE_HOST": "10.0.0.1"])
        guard case .failure(let reason) = noToken else { Issue.record("loaded without a token"); return }
        #expect(reason.reason.contains("no service account token"))
    }

    @Test func everyPageIsListedAndOnlyPVsThatNeedItArePatched() async {
        let api = FakeAPI()
        api.state.withLock { state in
            state.volumes = [
                "pv-a": FakeAPI.volume("pv-a"), "pv-b": FakeAPI.volume("pv-b", gid: "40001", annotated: "1"),
                "pv-c": FakeAPI.volume("pv-c", annotated: "40000"), "pv-d": FakeAPI.volume("pv-d", driver: "other"),
                "pv-e": FakeAPI.volume("pv-e", gid: nil), "pv-f": FakeAPI.volume("pv-f", gid: "-3"),
                "pv-g": FakeAPI.volume("pv-g", gid: "40002"),
            ]
        }
        await run(api) { api.patchedNames.count >= 3 }
        #expect(Set(api.patchedNames) == ["pv-a", "pv-b", "pv-g"])
        let requests = api.state.withLock { $0.requests }
        #expect(requests.filter { $0.hasPrefix("GET") }.count == 4, "\(requests)")  // 7 PVs, pages of 2
        let body = api.state.withLock { $0.patches.first { $0.name == "pv-b" }?.body }
        #expect(body == #"{"metadata":{"annotations":{"pv.beta.kubernetes.io/gid":"40001"}}}"#)
    }

    @Test func watchEventsArePatchedAndBookmarksResumeTheWatch() async {
        let api = FakeAPI()
        api.state.withLock { state in
            state.watchScripts = [
                [
                    #"{"type":"ADDED","object":\#(FakeAPI.volume("pv-new", version: "101"))}"#,
                    #"{"type":"ADDED","object":\#(FakeAPI.volume("pv-other", driver: "x", version: "102"))}"#,
                    #"{"type":"BOOKMARK","object":{"kind":"PersistentVolume","metadata":{"resourceVersion":"150"}}}"#,
                ],
                [#"{"type":"MODIFIED","object":\#(FakeAPI.volume("pv-new", version: "151"))}"#],
            ]
        }
        await run(api) { api.state.withLock { $0.watchResourceVersions.count >= 3 } && !api.patchedNames.isEmpty }
        #expect(api.patchedNames == ["pv-new"])
        #expect(api.state.withLock { $0.watchResourceVersions.prefix(3) } == ["100", "150", "151"])
    }

    @Test func anExpiredWatchListsAgain() async {
        let api = FakeAPI()
        api.state.withLock { state in
            state.watchScripts = [[#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}"#]]
        }
        await run(api) { api.state.withLock { $0.requests.filter { $0.hasPrefix("GET") }.count >= 2 } }
        let requests = api.state.withLock { $0.requests }
        #expect(requests.prefix(3).map { $0.prefix(5) } == ["GET /", "WATCH", "GET /"], "\(requests)")
    }

    @Test func aWatchAnswered410ListsAgain() async {
        let api = FakeAPI()
        api.state.withLock { $0.watchStatus = [410] }
        await run(api) { api.state.withLock { $0.requests.filter { $0.hasPrefix("GET") }.count >= 2 } }
        let requests = api.state.withLock { $0.requests }
        #expect(requests.prefix(3).map { $0.prefix(5) } == ["GET /", "WATCH", "GET /"], "\(requests)")
    }

    @Test func conflictsAndRefusalsAreRetriedAndGoneVolumesDropped() async {
        let api = FakeAPI()
        api.state.withLock { state in
            state.volumes = ["pv-a": FakeAPI.volume("pv-a"), "pv-gone": FakeAPI.volume("pv-gone", gid: "40009")]
            // pv-a: 409 (retried at once), 403 (retried after a backoff), then accepted; pv-gone: 404.
            state.patchAnswers = [409, 403, 404]
        }
        await run(api) { api.patchedNames.count >= 4 }
        #expect(api.patchedNames == ["pv-a", "pv-a", "pv-gone", "pv-a"])
    }

    /// Counts of `requests` matching `prefix`.
    func count(_ api: FakeAPI, _ prefix: String) -> Int {
        api.state.withLock { $0.requests.filter { $0.hasPrefix(prefix) }.count }
    }

    /// Waits (up to 10 s: the machine may be busy) until `prefix` requests reach `atLeast`, then
    /// checks that 500 ms more add only a handful: with 20 ms doubling to 100 ms (±20 %), at most
    /// 500 / 80 + 2. A loop without backoff would add hundreds.
    func expectBackoff(_ api: FakeAPI, _ prefix: String, atLeast: Int = 3) async {
        let deadline = ContinuousClock.now + .seconds(10)
        while count(api, prefix) < atLeast, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let before = count(api, prefix)
        #expect(before >= atLeast, "only \(before) \(prefix) requests in 10 s")
        try? await Task.sleep(for: .milliseconds(500))
        let added = count(api, prefix) - before
        #expect(added <= 8, "\(added) \(prefix) requests in 500 ms")
    }

    @Test func aRefusedListIsRetriedWithBackoff() async {
        let api = FakeAPI()
        api.state.withLock { state in
            state.volumes = ["pv-a": FakeAPI.volume("pv-a")]
            state.listStatus = 403
        }
        let task = Task { await reconciler(api).run() }
        await expectBackoff(api, "GET")
        api.state.withLock { $0.listStatus = 200 }
        let deadline = ContinuousClock.now + .seconds(10)
        while api.patchedNames.isEmpty, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        await task.value
        #expect(api.patchedNames == ["pv-a"])
    }

    @Test func watchesThatEndAtOnceOrReportErrorsBackOff() async {
        let empty = Array(repeating: [String](), count: 200)
        let errors = Array(
            repeating: [#"{"type":"ERROR","object":{"kind":"Status","code":500,"message":"etcd unavailable"}}"#],
            count: 200)
        for scripts in [empty, errors] {
            let api = FakeAPI()
            api.state.withLock { $0.watchScripts = scripts }
            let task = Task { await reconciler(api).run() }
            await expectBackoff(api, "WATCH")
            task.cancel()
            await task.value
            // Resumed from the list's resourceVersion, not listed again.
            #expect(count(api, "GET") == 1)
        }
    }

    @Test func watchLinesArriveWholeWhateverTheChunks() {
        let splitter = LineSplitter()
        #expect(splitter.append(Array("{\"a\":".utf8)).isEmpty)
        #expect(splitter.append(Array("1}\n{\"b\"".utf8)) == [Array("{\"a\":1}".utf8)])
        #expect(splitter.append(Array(":2}\n\n".utf8)) == [Array("{\"b\":2}".utf8), []])
        #expect(KubernetesClient.event(Array("not json".utf8)) == nil)
        #expect(KubernetesClient.percentEncoded("a b/c=") == "a%20b%2Fc%3D")
    }
}
