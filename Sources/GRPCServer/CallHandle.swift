import CGRPCShim
import CSICore

/// A borrowed `cgrpc_call *` that Swift owes exactly one answer.
///
/// `@unchecked Sendable`: the shim keeps the call alive until it is answered and makes
/// `cgrpc_call_respond` thread-safe and idempotent, so moving the pointer to the task that
/// answers it is safe. After `respond` the handle must not be used again (the dispatcher
/// guarantees one answer per call).
struct CallHandle: AnswerableCall, @unchecked Sendable {
    let pointer: OpaquePointer

    /// The key of this call in the in-flight table. Unique while the call is unanswered: the shim
    /// cannot reuse the memory before the answer.
    var key: UInt { UInt(bitPattern: Int(bitPattern: pointer)) }

    func respond(status: StatusCode, message: String, response: [UInt8]) {
        var message = message
        message.withUTF8 { text in
            response.withUnsafeBufferPointer { bytes in
                _ = text.withMemoryRebound(to: CChar.self) { characters in
                    cgrpc_call_respond(
                        pointer, status.rawValue, characters.baseAddress, characters.count, bytes.baseAddress,
                        bytes.count)
                }
            }
        }
    }
}

/// What the dispatcher needs of a call: a key that is unique while the call is unanswered, and
/// a way to answer it once. The shim's calls are `CallHandle`s; tests use recording fakes.
protocol AnswerableCall: Sendable {
    var key: UInt { get }
    func respond(status: StatusCode, message: String, response: [UInt8])
}
