// Server lifecycle: start, the completion-queue thread, and a shutdown that never frees what a
// late answer could still touch (see grpc-core-notes.md: the shutdown tag is not "all calls done").
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc_security.h>

#include "shim_private.h"

// Request slots kept posted: calls arriving together wait for a slot otherwise.
enum { CGRPC_REQUEST_SLOTS = 16 };

static void *cq_loop(void *argument) {
    cgrpc_server *server = argument;
    for (;;) {
        grpc_event event = grpc_completion_queue_next(server->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (event.type == GRPC_QUEUE_SHUTDOWN) {
            return NULL;
        }
        if (event.type != GRPC_OP_COMPLETE) {
            continue;
        }
        cgrpc_tag *tag = event.tag;
        if (tag->kind == CGRPC_TAG_SHUTDOWN) {
            pthread_mutex_lock(&server->mutex);
            server->shutdown_notified = 1;
            pthread_cond_broadcast(&server->changed);
            pthread_mutex_unlock(&server->mutex);
        } else {
            cgrpc_call_handle_event(tag, event.success);
        }
    }
}

static void set_error(char *error, size_t error_len, const char *message) {
    if (error == NULL || error_len == 0) {
        return;
    }
    char detail[256];
    cgrpc_log_last_error(detail, sizeof detail);
    if (detail[0] != '\0') {
        snprintf(error, error_len, "%s (gRPC: %s)", message, detail);
    } else {
        snprintf(error, error_len, "%s", message);
    }
}

// Drains and destroys a queue nobody else can touch any more.
static void cq_destroy_unused(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

cgrpc_server *cgrpc_server_start(const char *address, int max_message_bytes, void *context,
                                 cgrpc_call_callback on_call, cgrpc_cancel_callback on_cancel, char *error,
                                 size_t error_len) {
    cgrpc_server *server = calloc(1, sizeof(cgrpc_server));
    if (server == NULL) {
        set_error(error, error_len, "out of memory");
        return NULL;
    }
    server->context = context;
    server->on_call = on_call;
    server->on_cancel = on_cancel;
    server->shutdown_tag.kind = CGRPC_TAG_SHUTDOWN;
    pthread_mutex_init(&server->mutex, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&server->changed, &attributes);
    pthread_condattr_destroy(&attributes);

    grpc_init();
    grpc_arg args[2];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = max_message_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = max_message_bytes;
    grpc_channel_args channel_args = {.num_args = 2, .args = args};

    server->server = grpc_server_create(&channel_args, NULL);
    server->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server->server, server->cq, NULL);

    grpc_server_credentials *credentials = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(server->server, address, credentials);
    grpc_server_credentials_release(credentials);
    if (port == 0) {
        set_error(error, error_len, "gRPC could not listen on the address");
        grpc_server_destroy(server->server);  // never started: no calls, no shutdown needed
        cq_destroy_unused(server->cq);
        grpc_shutdown();
        pthread_cond_destroy(&server->changed);
        pthread_mutex_destroy(&server->mutex);
        free(server);
        return NULL;
    }
    grpc_server_start(server->server);
    for (int slot = 0; slot < CGRPC_REQUEST_SLOTS; slot++) {
        cgrpc_slot_post(server);
    }
    if (pthread_create(&server->cq_thread, NULL, cq_loop, server) != 0) {
        // Cannot serve without the queue thread; this only happens when the process is out of
        // threads, so leave the half-started server for the exit to clean up.
        set_error(error, error_len, "could not start the completion-queue thread");
        return NULL;
    }
    return server;
}

// Waits until the shutdown tag has arrived and no call is alive, or until `until` passes.
// Returns 1 when drained. Caller holds the mutex.
static int wait_drained(cgrpc_server *server, const struct timespec *until) {
    while (!(server->shutdown_notified && server->live_calls == 0)) {
        if (pthread_cond_timedwait(&server->changed, &server->mutex, until) == ETIMEDOUT) {
            return server->shutdown_notified && server->live_calls == 0;
        }
    }
    return 1;
}

static struct timespec monotonic_after(int64_t ms) {
    struct timespec when;
    clock_gettime(CLOCK_MONOTONIC, &when);
    when.tv_sec += ms / 1000;
    when.tv_nsec += (ms % 1000) * 1000000L;
    if (when.tv_nsec >= 1000000000L) {
        when.tv_sec += 1;
        when.tv_nsec -= 1000000000L;
    }
    return when;
}

int cgrpc_server_shutdown(cgrpc_server *server, int64_t grace_ms, int64_t hard_ms) {
    pthread_mutex_lock(&server->mutex);
    if (server->torn_down) {
        pthread_mutex_unlock(&server->mutex);
        return 0;
    }
    server->shutting_down = 1;
    pthread_mutex_unlock(&server->mutex);

    // Unlinks the socket and refuses new connections at once; calls in flight continue.
    grpc_server_shutdown_and_notify(server->server, server->cq, &server->shutdown_tag);

    struct timespec grace_end = monotonic_after(grace_ms);
    pthread_mutex_lock(&server->mutex);
    int drained = wait_drained(server, &grace_end);
    pthread_mutex_unlock(&server->mutex);

    if (!drained) {
        // Cancelled calls reach Swift through the cancel callback and still get answered.
        grpc_server_cancel_all_calls(server->server);
        struct timespec hard_end = monotonic_after(hard_ms);
        pthread_mutex_lock(&server->mutex);
        drained = wait_drained(server, &hard_end);
        if (!drained) {
            server->abandoned = 1;  // an answer may still come: keep the queue alive for it
        }
        pthread_mutex_unlock(&server->mutex);
        if (!drained) {
            return 1;
        }
    }

    // No call is alive, so nothing can queue an operation any more: safe to tear down.
    grpc_server_destroy(server->server);
    grpc_completion_queue_shutdown(server->cq);
    pthread_join(server->cq_thread, NULL);
    grpc_completion_queue_destroy(server->cq);
    grpc_shutdown();
    pthread_mutex_lock(&server->mutex);
    server->torn_down = 1;
    pthread_mutex_unlock(&server->mutex);
    return 0;
}

void cgrpc_server_destroy(cgrpc_server *server) {
    if (server == NULL) {
        return;
    }
    pthread_mutex_lock(&server->mutex);
    int freeable = server->torn_down && !server->abandoned;
    pthread_mutex_unlock(&server->mutex);
    if (!freeable) {
        return;  // still serving or abandoned: the process exit reclaims it
    }
    pthread_cond_destroy(&server->changed);
    pthread_mutex_destroy(&server->mutex);
    free(server);
}

int64_t cgrpc_server_live_calls(cgrpc_server *server) {
    pthread_mutex_lock(&server->mutex);
    int64_t live = server->live_calls;
    pthread_mutex_unlock(&server->mutex);
    return live;
}
