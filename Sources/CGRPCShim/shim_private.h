// Internal structures of the gRPC shim. Every pointer field says whether it is OWNED (this struct
// frees it) or BORROWED (someone else guarantees it outlives this struct).
#ifndef CGRPCSHIM_PRIVATE_H
#define CGRPCSHIM_PRIVATE_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <pthread.h>

#include "CGRPCShim.h"

// What a completion-queue event is about. Tags live inside the call or server they refer to.
typedef enum {
    CGRPC_TAG_NEW_CALL,   // a request slot was filled (or flushed at shutdown)
    CGRPC_TAG_RECEIVED,   // the request message arrived (or will never arrive)
    CGRPC_TAG_CLOSED,     // the call ended on the client side; `close_cancelled` says how
    CGRPC_TAG_SENT,       // our answer left (or could not be sent)
    CGRPC_TAG_SHUTDOWN,   // grpc_server_shutdown_and_notify finished
} cgrpc_tag_kind;

typedef struct {
    cgrpc_tag_kind kind;
    cgrpc_call *call;  // BORROWED; NULL for the shutdown tag
} cgrpc_tag;

struct cgrpc_call {
    cgrpc_server *server;  // BORROWED: a server is never freed while it has calls
    grpc_call *call;       // OWNED (one ref), unref'd when the call is freed
    grpc_call_details details;              // OWNED
    grpc_metadata_array request_metadata;   // OWNED
    grpc_byte_buffer *request;              // OWNED until the RECEIVED tag is handled
    int close_cancelled;                    // written by core for RECV_CLOSE_ON_SERVER
    grpc_byte_buffer *response;             // OWNED until the SENT tag is handled
    grpc_slice status_message;              // OWNED until the SENT tag is handled

    cgrpc_tag new_call_tag, received_tag, closed_tag, sent_tag;

    // Guarded by server->mutex.
    int refs;              // outstanding reasons to keep the call: queued ops + an owed answer
    int handed_over;       // the Swift call callback has run
    int answered;          // cgrpc_call_respond was accepted once
    int cancelled;         // the client or shutdown cancelled the call
    int cancel_delivered;  // the Swift cancel callback has run
};

struct cgrpc_server {
    grpc_server *server;        // OWNED
    grpc_completion_queue *cq;  // OWNED; only ever shut down when no answer can still arrive
    pthread_t cq_thread;

    void *context;  // BORROWED: Swift keeps it alive until cgrpc_server_destroy
    cgrpc_call_callback on_call;
    cgrpc_cancel_callback on_cancel;

    pthread_mutex_t mutex;
    pthread_cond_t changed;  // signalled when live_calls or shutdown_notified change

    // Guarded by mutex.
    int shutting_down;      // stop posting new request slots
    int shutdown_notified;  // the SHUTDOWN tag arrived
    int abandoned;          // shutdown gave up at the hard limit; never free anything
    int torn_down;          // server and queue destroyed
    int64_t live_calls;     // calls accepted from core and not yet freed

    cgrpc_tag shutdown_tag;
};

// call.c
void cgrpc_slot_post(cgrpc_server *server);
void cgrpc_call_handle_event(cgrpc_tag *tag, int success);

// log.c
void cgrpc_log_last_error(char *buffer, size_t buffer_len);

#endif
