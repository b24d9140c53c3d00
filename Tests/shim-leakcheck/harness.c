// A C-only server over the gRPC shim (Sources/CGRPCShim), for running the shim under valgrind:
// valgrind 3.19 cannot run the Swift binary, so this harness plays the Swift side.
//
//   harness unix:/path/to.sock [max_message_bytes] [grace_ms] [hard_ms]
//
// Methods (anything else is answered like /test/Inline):
//   /test/Inline  answered inline on the completion-queue thread with a fixed small response
//   /test/Echo    answered inline with the request bytes
//   /test/Error   answered inline with FAILED_PRECONDITION and a message
//   /test/Slow    answered from the "late" pthread after N ms; the request is N in ASCII decimal
//                 (default 200). A cancelled slow call is answered either at once from the cancel
//                 callback (even call numbers) or late by the pthread (odd ones: an answer that
//                 arrives after the client has gone), so both paths run.
//
// Runs until SIGTERM or SIGINT, then cgrpc_server_shutdown(grace, hard) and cgrpc_server_destroy,
// stops its own thread and frees everything it allocated. Exit status: 0 when shutdown reported
// every call answered, 1 otherwise, 2 on a usage or start error. Counters go to stderr.
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CGRPCShim.h"

enum {
    STATUS_OK = 0,
    STATUS_CANCELLED = 1,
    STATUS_FAILED_PRECONDITION = 9,
};

static const uint8_t fixed_response[] = {0x0a, 0x02, 0x08, 0x01};  // csi.v1.ProbeResponse{ready: true}

// A slow call waiting for the late pthread. Owned by the pending list until removed from it;
// whoever removes it answers the call and frees the entry.
typedef struct pending {
    cgrpc_call *call;  // BORROWED from the shim until answered
    uint64_t number;
    int64_t due_ns;  // CLOCK_MONOTONIC
    int cancelled;
    struct pending *next;
} pending;

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;  // CLOCK_MONOTONIC; signalled when the list or `stopping` change
static pending *pending_list;   // guarded by mutex
static int stopping;            // guarded by mutex
static uint64_t slow_numbers;   // guarded by mutex

// Counters, guarded by mutex.
static uint64_t calls_seen, inline_answers, slow_answers_on_time, late_answers_after_cancel,
    answers_in_cancel_callback, cancels_seen, duplicate_answers_refused;

static int64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void respond_ok(cgrpc_call *call, const uint8_t *bytes, size_t length) {
    cgrpc_call_respond(call, STATUS_OK, NULL, 0, bytes, length);
}

static int method_is(const char *method, size_t length, const char *name) {
    return length == strlen(name) && memcmp(method, name, length) == 0;
}

static int64_t slow_millis(const uint8_t *request, size_t length) {
    if (length == 0 || length > 18) {
        return 200;
    }
    int64_t value = 0;
    for (size_t i = 0; i < length; i++) {
        if (request[i] < '0' || request[i] > '9') {
            return 200;
        }
        value = value * 10 + (request[i] - '0');
    }
    return value;
}

static void on_call(void *context, cgrpc_call *call, const char *method, size_t method_len, const uint8_t *request,
                    size_t request_len, int64_t deadline_ns) {
    (void)context;
    (void)deadline_ns;
    pthread_mutex_lock(&mutex);
    calls_seen++;
    pthread_mutex_unlock(&mutex);

    if (method_is(method, method_len, "/test/Slow")) {
        pending *entry = calloc(1, sizeof *entry);
        if (entry == NULL) {
            static const char reason[] = "out of memory";
            cgrpc_call_respond(call, 8 /* RESOURCE_EXHAUSTED */, reason, sizeof reason - 1, NULL, 0);
            return;
        }
        entry->call = call;
        entry->due_ns = now_ns() + slow_millis(request, request_len) * 1000000LL;
        pthread_mutex_lock(&mutex);
        entry->number = slow_numbers++;
        entry->next = pending_list;
        pending_list = entry;
        pthread_cond_signal(&changed);
        pthread_mutex_unlock(&mutex);
        return;
    }

    if (method_is(method, method_len, "/test/Echo")) {
        respond_ok(call, request, request_len);
    } else if (method_is(method, method_len, "/test/Error")) {
        static const char message[] = "the harness refuses /test/Error, as asked";
        cgrpc_call_respond(call, STATUS_FAILED_PRECONDITION, message, sizeof message - 1, NULL, 0);
    } else {
        respond_ok(call, fixed_response, sizeof fixed_response);
    }
    // A second answer must be refused. Safe to try only here: until this callback returns, the
    // shim holds the call for its receive batch, so the call cannot have been freed yet.
    if (cgrpc_call_respond(call, STATUS_OK, NULL, 0, fixed_response, sizeof fixed_response) != 0) {
        fprintf(stderr, "harness: BUG: a second answer to the same call was accepted\n");
        abort();
    }
    pthread_mutex_lock(&mutex);
    inline_answers++;
    duplicate_answers_refused++;
    pthread_mutex_unlock(&mutex);
}

// Removes `call`'s entry from the pending list; NULL when it is not there. Caller holds mutex.
static pending *unlink_call(cgrpc_call *call) {
    for (pending **link = &pending_list; *link != NULL; link = &(*link)->next) {
        if ((*link)->call == call) {
            pending *found = *link;
            *link = found->next;
            return found;
        }
    }
    return NULL;
}

static void on_cancel(void *context, cgrpc_call *call) {
    (void)context;
    pthread_mutex_lock(&mutex);
    cancels_seen++;
    pending *entry = NULL;
    for (pending *candidate = pending_list; candidate != NULL; candidate = candidate->next) {
        if (candidate->call == call) {
            entry = candidate;
            break;
        }
    }
    if (entry == NULL) {
        pthread_mutex_unlock(&mutex);
        return;  // an inline call is answered before its callback returns: never cancelled here
    }
    entry->cancelled = 1;
    if (entry->number % 2 == 0 || stopping) {
        unlink_call(call);
        answers_in_cancel_callback++;
        pthread_mutex_unlock(&mutex);
        static const char reason[] = "cancelled";
        cgrpc_call_respond(call, STATUS_CANCELLED, reason, sizeof reason - 1, NULL, 0);
        free(entry);
        return;
    }
    // Odd: the late thread answers soon, after the client has already gone.
    int64_t soon = now_ns() + 20 * 1000000LL;
    if (entry->due_ns > soon) {
        entry->due_ns = soon;
    }
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&mutex);
}

// Answers slow calls when they fall due; at stop, answers whatever is left.
static void *late_loop(void *argument) {
    (void)argument;
    pthread_mutex_lock(&mutex);
    for (;;) {
        pending *due = NULL;
        int64_t earliest = INT64_MAX;
        int64_t now = now_ns();
        for (pending *entry = pending_list; entry != NULL; entry = entry->next) {
            if (entry->due_ns <= now || stopping) {
                due = entry;
                break;
            }
            if (entry->due_ns < earliest) {
                earliest = entry->due_ns;
            }
        }
        if (due != NULL) {
            unlink_call(due->call);
            if (due->cancelled) {
                late_answers_after_cancel++;
            } else {
                slow_answers_on_time++;
            }
            pthread_mutex_unlock(&mutex);
            // OK even when cancelled: a late success must be dropped by core, not crash it.
            respond_ok(due->call, fixed_response, sizeof fixed_response);
            free(due);
            pthread_mutex_lock(&mutex);
            continue;
        }
        if (stopping) {
            break;
        }
        if (earliest == INT64_MAX) {
            pthread_cond_wait(&changed, &mutex);
        } else {
            struct timespec until = {.tv_sec = earliest / 1000000000LL, .tv_nsec = earliest % 1000000000LL};
            pthread_cond_timedwait(&changed, &mutex, &until);
        }
    }
    pthread_mutex_unlock(&mutex);
    return NULL;
}

static void on_log(int severity, const char *file, int line, const char *message) {
    fprintf(stderr, "grpc[%d] %s:%d %s\n", severity, file, line, message);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s unix:/path.sock [max_message_bytes] [grace_ms] [hard_ms]\n", argv[0]);
        return 2;
    }
    int max_message = argc > 2 ? atoi(argv[2]) : 65536;
    int64_t grace_ms = argc > 3 ? atoll(argv[3]) : 2000;
    int64_t hard_ms = argc > 4 ? atoll(argv[4]) : 5000;

    // Signals are taken by sigwait in main only: block them before any thread exists.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attributes);
    pthread_condattr_destroy(&attributes);

    cgrpc_log_route(on_log, 2);
    char error[512];
    cgrpc_server *server = cgrpc_server_start(argv[1], max_message, NULL, on_call, on_cancel, error, sizeof error);
    if (server == NULL) {
        fprintf(stderr, "harness: cannot start: %s\n", error);
        return 2;
    }
    pthread_t late;
    if (pthread_create(&late, NULL, late_loop, NULL) != 0) {
        fprintf(stderr, "harness: cannot start the late-answer thread\n");
        return 2;
    }
    fprintf(stderr, "harness: serving %s\n", argv[1]);

    int signal_number = 0;
    sigwait(&signals, &signal_number);
    fprintf(stderr, "harness: signal %d, live calls %" PRId64 "\n", signal_number, cgrpc_server_live_calls(server));

    // The late thread keeps answering during the grace period and after cancel_all_calls (odd
    // cancelled calls within 20 ms), so every call is answered before the hard limit.
    int unanswered = cgrpc_server_shutdown(server, grace_ms, hard_ms);
    fprintf(stderr, "harness: cgrpc_server_shutdown returned %d\n", unanswered);

    pthread_mutex_lock(&mutex);
    stopping = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&mutex);
    pthread_join(late, NULL);
    cgrpc_server_destroy(server);

    fprintf(stderr,
            "harness: calls %" PRIu64 ", inline answers %" PRIu64 ", slow on time %" PRIu64
            ", cancels seen %" PRIu64 ", answered in cancel callback %" PRIu64
            ", late answers after cancel %" PRIu64 ", duplicate answers refused %" PRIu64 "\n",
            calls_seen, inline_answers, slow_answers_on_time, cancels_seen, answers_in_cancel_callback,
            late_answers_after_cancel, duplicate_answers_refused);
    pthread_cond_destroy(&changed);
    return unanswered == 0 ? 0 : 1;
}
