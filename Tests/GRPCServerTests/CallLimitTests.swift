import CSICore
import Glibc
import Logging
import SwiftProtobuf
import Synchronization
import Testing

@testable import GRPCServer

/// A call as the shim would hand it over, recording its answers.
private final class RecordedCall: AnswerableCall {
    private static let nextKey = Atomic<UInt>(1)

    let key = RecordedCall.nextKey.wrappingAdd(1, ordering: .relaxed).oldValue
    private let answers = Mutex<[(status: StatusCode, message: String)]>([])

    func respond(status: StatusCode, message: String, response: [UInt8]) {
        answers.withLock { $0.append((status, message)) }
    }

    /// The answers so far (more than one would be a bug).
    var answered: [(status: StatusCode, message: String)] { answers.withLock { $0 } }

    /// The first answer, waiting for it up to `limit` (the answer arrives from another thread).
    func answer(within limit: Duration = .seconds(10)) async -> (status: StatusCode, message: String)? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let first = answered.first { return first }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return nil
    }
}

/// What the fake handlers report and wait for: which calls started, and gates that let them end.
private final class Gates: Sendable {
    private let state = Mutex<(started: [String], open: Set<String>)>(([], []))

    var started: [String] { state.withLock { $0.started } }

    func open(_ name: String) {
        state.withLock { _ = $0.open.insert(name) }
    }

    func markStarted(_ name: String) {
        state.withLock { $0.started.append(name) }
    }

    /// Waits until `name` is opened; throws CancellationError when the task is cancelled.
    func wait(for name: String) async throws {
        while !state.withLock({ $0.open.contains(name) }) {
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Waits until the calls named have started (up to `limit`).
    func waitUntilStarted(_ names: Set<String>, within limit: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if names.isSubset(of: Set(started)) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }
}

private let holdPath = "/test.v1.Controller/Hold"
private let holdReadPath = "/test.v1.Controller/HoldRead"
private let leavePath = "/test.v1.Controller/LeaveWorkRunning"
private let unlimitedPath = "/test.v1.Node/GetInfo"
private let inlinePath = "/test.v1.Identity/Probe"

/// A dispatcher over fake routes: `Hold` (limited, ABORTED when busy) starts, then waits for the
/// gate named in its request; `HoldRead` the same, with the default busy code; `LeaveWorkRunning`
/// starts a task that waits for its gate and answers at once; `GetInfo` is async but unlimited;
/// `Probe` is inline.
private func makeDispatcher(limit: CallLimit, gates: Gates) -> Dispatcher {
    var router = Router()
    let hold: @Sendable (Google_Protobuf_StringValue, RequestContext) async throws -> Google_Protobuf_Empty = {
        request, _ in
        gates.markStarted(request.value)
        try await gates.wait(for: request.value)
        return Google_Protobuf_Empty()
    }
    router.register(holdPath, limit: limit, busyCode: .aborted, hold)
    router.register(holdReadPath, limit: limit, hold)
    router.register(leavePath, limit: limit, busyCode: .aborted) {
        (request: Google_Protobuf_StringValue, _) -> Google_Protobuf_Empty in
        gates.markStarted(request.value)
        // Like the controller's Heketi operation, which outlives the RPC that started it.
        BlockingThread.task { try? await gates.wait(for: request.value) }
        return Google_Protobuf_Empty()
    }
    router.register(unlimitedPath) { (_: Google_Protobuf_Empty, _) -> Google_Protobuf_Empty in Google_Protobuf_Empty() }
    router.registerInline(inlinePath) { (_: Google_Protobuf_Empty, _) -> Google_Protobuf_Empty in
        Google_Protobuf_Empty()
    }
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return Dispatcher(router: router, logger: logger)
}

private func limit(running: Int, waiting: Int, wait: Duration = .seconds(30)) -> CallLimit {
    CallLimit(
        service: "controller", setting: "--max-controller-calls", maxRunning: running, maxWaiting: waiting,
        maxWait: wait)
}

extension Dispatcher {
    /// Hands over a call the way the shim does; returns it to check its answer.
    fileprivate func call(
        _ path: String, _ gate: String = "", deadline: Duration? = nil
    ) throws -> RecordedCall {
        let call = RecordedCall()
        var request = Google_Protobuf_StringValue()
        request.value = gate
        accept(
            call, path: path, request: try request.serializedBytes(),
            deadlineNanoseconds: deadline.map { $0.nanoseconds } ?? -1)
        return call
    }
}

private func threadCount() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("Threads:") {
            return Int(text.dropFirst("Threads:".count).filter { $0.isNumber }) ?? 0
        }
    }
    return 0
}

@Suite struct CallLimitTests {
    @Test func callsBeyondTheCapWaitAndStartWhenASlotFrees() async throws {
        let gates = Gates()
        let limit = limit(running: 2, waiting: 4)
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let first = try dispatcher.call(holdPath, "a")
        let second = try dispatcher.call(holdPath, "b")
        #expect(await gates.waitUntilStarted(["a", "b"]))
        let third = try dispatcher.call(holdPath, "c")
        #expect(limit.waitingCount == 1 && limit.runningCount == 2)
        try await Task.sleep(for: .milliseconds(50))
        #expect(!gates.started.contains("c"), "a third call must wait while two run")
        #expect(third.answered.isEmpty)

        gates.open("a")
        #expect(await first.answer()?.status == .ok)
        #expect(await gates.waitUntilStarted(["c"]), "the waiting call takes the slot the first one freed")
        #expect(limit.waitingCount == 0 && limit.runningCount == 2)
        gates.open("b")
        gates.open("c")
        #expect(await second.answer()?.status == .ok)
        #expect(await third.answer()?.status == .ok)
        #expect(third.answered.count == 1)
        #expect(await eventually { limit.runningCount == 0 })
        #expect(dispatcher.unansweredCount == 0)
    }

    @Test func aCallStillWaitingAfterMaxWaitGetsTheRoutesBusyCodeAndSaysWhy() async throws {
        let gates = Gates()
        let limit = limit(running: 1, waiting: 4, wait: .milliseconds(100))
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let running = try dispatcher.call(holdPath, "a")
        #expect(await gates.waitUntilStarted(["a"]))
        let started = ContinuousClock.now
        let write = try dispatcher.call(holdPath, "b")
        let read = try dispatcher.call(holdReadPath, "c")

        let writeAnswer = try #require(await write.answer())
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        #expect(writeAnswer.status == .aborted)
        #expect(
            writeAnswer.message
                == "the controller already runs 1 call (--max-controller-calls); this call waited 100 ms for one of "
                + "them to finish; retry later")
        #expect(await read.answer()?.status == .resourceExhausted)
        #expect(!gates.started.contains("b") && !gates.started.contains("c"))
        #expect(limit.waitingCount == 0)

        gates.open("a")
        #expect(await running.answer()?.status == .ok)
        #expect(write.answered.count == 1 && read.answered.count == 1)
    }

    @Test func aFullQueueRefusesAtOnce() async throws {
        let gates = Gates()
        let limit = limit(running: 1, waiting: 1)
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let running = try dispatcher.call(holdPath, "a")
        let waiting = try dispatcher.call(holdPath, "b")
        let refused = try dispatcher.call(holdPath, "c")
        // Answered before `accept` returned: nothing waits, nothing runs.
        let answer = try #require(refused.answered.first)
        #expect(answer.status == .aborted)
        #expect(
            answer.message
                == "the controller already runs 1 call (--max-controller-calls) and 1 more wait for a slot; "
                + "retry later")
        #expect(waiting.answered.isEmpty)

        let noQueue = CallLimit(service: "node", setting: "--max-node-calls", maxRunning: 1, maxWaiting: 0)
        let other = makeDispatcher(limit: noQueue, gates: gates)
        _ = try other.call(holdReadPath, "d")
        let busy = try #require(try other.call(holdReadPath, "e").answered.first)
        #expect(busy.status == .resourceExhausted)
        #expect(busy.message == "the node already runs 1 call (--max-node-calls); retry later")

        for gate in ["a", "b", "d"] { gates.open(gate) }
        #expect(await running.answer()?.status == .ok)
        #expect(await waiting.answer()?.status == .ok)
        #expect(await eventually { noQueue.runningCount == 0 && limit.runningCount == 0 })
    }

    @Test func inlineAndUnlimitedRoutesAreNeverQueuedOrRefused() async throws {
        let gates = Gates()
        let limit = limit(running: 1, waiting: 0)
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let running = try dispatcher.call(holdPath, "a")
        #expect(try dispatcher.call(holdPath, "b").answered.first?.status == .aborted, "the limit is full")
        for _ in 0..<100 {
            // Inline: answered on the calling thread, before accept returns.
            #expect(try dispatcher.call(inlinePath).answered.first?.status == .ok)
        }
        let unlimited = try (0..<20).map { _ in try dispatcher.call(unlimitedPath) }
        for call in unlimited {
            #expect(await call.answer()?.status == .ok)
        }
        #expect(limit.runningCount == 1 && limit.waitingCount == 0)
        gates.open("a")
        #expect(await running.answer()?.status == .ok)
    }

    @Test func aWaitingCallThatIsCancelledLeavesTheQueueAndIsAnswered() async throws {
        let gates = Gates()
        let limit = limit(running: 1, waiting: 4)
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let running = try dispatcher.call(holdPath, "a")
        #expect(await gates.waitUntilStarted(["a"]))
        let cancelled = try dispatcher.call(holdPath, "b")
        let kept = try dispatcher.call(holdPath, "c")
        #expect(limit.waitingCount == 2)

        dispatcher.cancel(key: cancelled.key)
        // Answered at once, on the cancelling (completion-queue) thread.
        #expect(cancelled.answered.first?.status == .cancelled)
        #expect(limit.waitingCount == 1)
        dispatcher.cancel(key: cancelled.key)  // a second delivery finds nothing
        #expect(cancelled.answered.count == 1)

        gates.open("a")
        #expect(await running.answer()?.status == .ok)
        #expect(await gates.waitUntilStarted(["c"]), "the next waiting call, not the cancelled one, starts")
        #expect(!gates.started.contains("b"))
        gates.open("c")
        #expect(await kept.answer()?.status == .ok)
        #expect(cancelled.answered.count == 1)
    }

    @Test func aWaitingCallWhoseDeadlinePassesLeavesTheQueue() async throws {
        let gates = Gates()
        let limit = limit(running: 1, waiting: 4, wait: .seconds(30))
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let running = try dispatcher.call(holdPath, "a")
        let late = try dispatcher.call(holdPath, "b", deadline: .milliseconds(50))
        let answer = try #require(await late.answer())
        #expect(answer.status == .deadlineExceeded)
        #expect(answer.message.contains("deadline passed while it waited"))
        #expect(limit.waitingCount == 0)
        gates.open("a")
        #expect(await running.answer()?.status == .ok)
        #expect(!gates.started.contains("b"))
    }

    @Test func aRunningCallThatIsCancelledFreesItsSlot() async throws {
        let gates = Gates()
        let limit = limit(running: 1, waiting: 4)
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let running = try dispatcher.call(holdPath, "a")
        #expect(await gates.waitUntilStarted(["a"]))
        let next = try dispatcher.call(holdPath, "b")
        dispatcher.cancel(key: running.key)
        #expect(await running.answer()?.status == .cancelled)
        #expect(await gates.waitUntilStarted(["b"]))
        gates.open("b")
        #expect(await next.answer()?.status == .ok)
    }

    @Test func workACallLeavesRunningKeepsItsSlotUntilItEnds() async throws {
        let gates = Gates()
        let limit = limit(running: 1, waiting: 4)
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let leaving = try dispatcher.call(leavePath, "background")
        #expect(await leaving.answer()?.status == .ok, "the RPC itself ends at once")
        let next = try dispatcher.call(holdPath, "b")
        try await Task.sleep(for: .milliseconds(100))
        #expect(limit.runningCount == 1 && limit.waitingCount == 1, "the work left running holds the slot")
        #expect(!gates.started.contains("b"))

        gates.open("background")
        #expect(await gates.waitUntilStarted(["b"]), "the slot comes free when the work ends")
        gates.open("b")
        #expect(await next.answer()?.status == .ok)
        #expect(await eventually { limit.runningCount == 0 })
    }

    @Test func waitingCallsCostNoThread() async throws {
        let gates = Gates()
        let waitingCalls = 2000
        let limit = limit(running: 1, waiting: waitingCalls)
        let dispatcher = makeDispatcher(limit: limit, gates: gates)
        let running = try dispatcher.call(holdPath, "a")
        #expect(await gates.waitUntilStarted(["a"]))
        let before = threadCount()
        let waiting = try (0..<waitingCalls).map { _ in try dispatcher.call(holdPath, "never") }
        let during = threadCount()
        #expect(limit.waitingCount == waitingCalls && dispatcher.unansweredCount == waitingCalls + 1)
        // A thread (or a task) per call would add 2,000; other suites running meanwhile add a few.
        #expect(during - before < 100, "threads: \(before) before, \(during) with \(waitingCalls) calls waiting")
        #expect(gates.started == ["a"])

        for call in waiting { dispatcher.cancel(key: call.key) }
        #expect(waiting.allSatisfy { $0.answered.first?.status == .cancelled })
        gates.open("a")
        #expect(await running.answer()?.status == .ok)
        #expect(dispatcher.unansweredCount == 0)
    }

    @Test func messagesNameTheServiceTheFlagAndTheWait() {
        let limit = CallLimit(
            service: "node", setting: "--max-node-calls", maxRunning: 32, maxWaiting: 32, maxWait: .seconds(1))
        #expect(
            limit.message(for: .queueFull)
                == "the node already runs 32 calls (--max-node-calls) and 32 more wait for a slot; retry later")
        #expect(
            limit.message(for: .waitedTooLong)
                == "the node already runs 32 calls (--max-node-calls); this call waited 1 s for one of them to finish; "
                + "retry later")
    }
}

/// Polls `condition` until it holds (up to `limit`): for state another thread changes.
private func eventually(within limit: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return condition()
}
