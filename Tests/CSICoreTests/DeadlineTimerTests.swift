import Synchronization
import Testing

@testable import CSICore

@Suite("DeadlineTimer")
struct DeadlineTimerTests {
    /// When each action ran, by name.
    private final class Fired: Sendable {
        private let times = Mutex<[String: ContinuousClock.Instant]>([:])
        func record(_ name: String) { times.withLock { $0[name] = .now } }
        func time(_ name: String) -> ContinuousClock.Instant? { times.withLock { $0[name] } }
        var names: Set<String> { times.withLock { Set($0.keys) } }
    }

    @Test("actions run at their deadline, not before; an earlier deadline added later is not delayed")
    func firesOnTime() async throws {
        let timer = DeadlineTimer()
        let fired = Fired()
        let start = ContinuousClock.now
        _ = timer.schedule(at: start + .seconds(30)) { fired.record("late") }
        // The thread now sleeps until the late deadline; this one must wake it.
        _ = timer.schedule(at: start + .milliseconds(150)) { fired.record("early") }
        _ = timer.schedule(at: start - .seconds(1)) { fired.record("past") }
        // A client may send a deadline centuries away; it must neither fire nor break the timer.
        _ = timer.schedule(at: start + .nanoseconds(Int64.max)) { fired.record("centuries") }
        for _ in 0..<500 where fired.names.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(fired.names == ["early", "past"])
        let early = try #require(fired.time("early"))
        #expect(early >= start + .milliseconds(150))
        // Generous: only "long before the late one" matters, and CI machines can be slow.
        #expect(early < start + .seconds(10))
        #expect(timer.pendingCount == 2)
    }

    @Test("a cancelled action never runs")
    func cancelled() async throws {
        let timer = DeadlineTimer()
        let fired = Fired()
        let token = timer.schedule(at: .now + .milliseconds(100)) { fired.record("cancelled") }
        _ = timer.schedule(at: .now + .milliseconds(200)) { fired.record("kept") }
        timer.cancel(token)
        #expect(timer.pendingCount == 1)
        for _ in 0..<500 where fired.names.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(fired.names == ["kept"])
        #expect(timer.pendingCount == 0)
    }

    @Test("many deadlines, in any order, all fire once")
    func many() async throws {
        let timer = DeadlineTimer()
        let count = Mutex(0)
        let start = ContinuousClock.now
        for index in 0..<200 {
            _ = timer.schedule(at: start + .milliseconds((index * 37) % 100)) { count.withLock { $0 += 1 } }
        }
        for _ in 0..<100 where count.withLock({ $0 }) < 200 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(count.withLock { $0 } == 200)
    }
}
