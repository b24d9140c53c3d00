// A narrow server-side shim over gRPC core (Debian libgrpc-dev 1.51).
//
// Every grpc_* type stays on the C side: Swift sees two opaque handles (a server and a call),
// plain bytes, and callbacks. The shim owns the completion-queue thread, answers every call
// exactly once, and never tears the queue down while a response may still arrive.
//
// Ownership: see shim_private.h for who frees what. From Swift's point of view:
//  - a cgrpc_server is created by cgrpc_server_start and freed by cgrpc_server_destroy;
//  - a cgrpc_call handed to the call callback is BORROWED until Swift answers it with
//    cgrpc_call_respond, exactly once; after that Swift must not touch it again.
#ifndef CGRPCSHIM_H
#define CGRPCSHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgrpc_server cgrpc_server;
typedef struct cgrpc_call cgrpc_call;

/// A new call with its request. Runs on the completion-queue thread: it must not block.
/// `method` and `request` are only valid during the callback (copy them).
/// `deadline_ns` is the time left before the client's deadline in nanoseconds, or -1 for none.
typedef void (*cgrpc_call_callback)(void *context, cgrpc_call *call, const char *method, size_t method_len,
                                    const uint8_t *request, size_t request_len, int64_t deadline_ns);

/// The client cancelled, its deadline passed, or shutdown cancelled the call. Delivered at most
/// once per call, only after the call callback, and only while the call is still unanswered.
/// Runs on the completion-queue thread: it must not block. The call still has to be answered.
typedef void (*cgrpc_cancel_callback)(void *context, cgrpc_call *call);

/// One line of gRPC core's own logging. severity: 0 debug, 1 info, 2 error.
typedef void (*cgrpc_log_callback)(int severity, const char *file, int line, const char *message);

/// Routes gRPC core's log lines to `callback` (process-wide; call before creating a server).
/// `min_severity` as in cgrpc_log_callback.
void cgrpc_log_route(cgrpc_log_callback callback, int min_severity);

/// Creates a server listening on `address` (for example "unix:/csi/csi.sock") and starts serving.
/// Returns NULL on failure with a reason written to `error` (NUL-terminated, truncated to fit).
cgrpc_server *cgrpc_server_start(const char *address, int max_message_bytes, void *context,
                                 cgrpc_call_callback on_call, cgrpc_cancel_callback on_cancel, char *error,
                                 size_t error_len);

/// Stops accepting calls, waits up to `grace_ms` for in-flight calls to be answered, then cancels
/// the rest and waits up to `hard_ms` more. Blocks: call it from a thread you can spare.
/// Returns 0 when every call was answered (the server is torn down and may be destroyed),
/// 1 when calls were still unanswered at the hard limit (late answers are then dropped safely).
int cgrpc_server_shutdown(cgrpc_server *server, int64_t grace_ms, int64_t hard_ms);

/// Frees the server after cgrpc_server_shutdown returned 0. After a return of 1 it only marks
/// the server abandoned (the process is expected to exit) so that late answers stay harmless.
void cgrpc_server_destroy(cgrpc_server *server);

/// The number of calls handed to Swift and not yet answered (for tests and diagnostics).
int64_t cgrpc_server_live_calls(cgrpc_server *server);

/// Answers a call: status 0 with `response` bytes, or a non-zero gRPC status code with `message`.
/// Thread-safe. Only the first answer counts (returns 1; a second one returns 0) — but only while
/// the shim still holds the call: after the first answer the call may be freed at any moment, so
/// the caller must answer each call exactly once (see the ownership note at the top).
int cgrpc_call_respond(cgrpc_call *call, int status, const char *message, size_t message_len,
                       const uint8_t *response, size_t response_len);

#ifdef __cplusplus
}
#endif

#endif
