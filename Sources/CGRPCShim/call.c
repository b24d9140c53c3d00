// The life of one call: request slot → received → handed to Swift → answered → freed.
//
// A call is freed when its reference count drops to zero. References are taken for each batch
// queued on the completion queue (receive, close, send) and for the answer Swift owes once the
// call has been handed over, so a late answer always finds its call alive.
#include <stdlib.h>
#include <string.h>

#include "shim_private.h"

static void call_free(cgrpc_call *call) {
    if (call->call != NULL) {
        grpc_call_unref(call->call);
    }
    grpc_call_details_destroy(&call->details);
    grpc_metadata_array_destroy(&call->request_metadata);
    if (call->request != NULL) {
        grpc_byte_buffer_destroy(call->request);
    }
    if (call->response != NULL) {
        grpc_byte_buffer_destroy(call->response);
    }
    grpc_slice_unref(call->status_message);
    free(call);
}

// Drops one reference; frees the call and updates the live count when it was the last.
// One more holder of `call` (an operation in flight, or an answer owed); call_release undoes it.
static void call_retain(cgrpc_call *call) {
    pthread_mutex_lock(&call->server->mutex);
    call->refs++;
    pthread_mutex_unlock(&call->server->mutex);
}

static void call_release(cgrpc_call *call) {
    cgrpc_server *server = call->server;
    pthread_mutex_lock(&server->mutex);
    int last = --call->refs == 0;
    if (last) {
        server->live_calls--;
        pthread_cond_broadcast(&server->changed);
    }
    pthread_mutex_unlock(&server->mutex);
    if (last) {
        call_free(call);
    }
}

static void tag_init(cgrpc_tag *tag, cgrpc_tag_kind kind, cgrpc_call *call) {
    tag->kind = kind;
    tag->call = call;
}

void cgrpc_slot_post(cgrpc_server *server) {
    cgrpc_call *call = calloc(1, sizeof(cgrpc_call));
    if (call == NULL) {
        return;  // the server keeps serving with one slot fewer
    }
    call->server = server;
    call->status_message = grpc_empty_slice();
    grpc_call_details_init(&call->details);
    grpc_metadata_array_init(&call->request_metadata);
    tag_init(&call->new_call_tag, CGRPC_TAG_NEW_CALL, call);
    tag_init(&call->received_tag, CGRPC_TAG_RECEIVED, call);
    tag_init(&call->closed_tag, CGRPC_TAG_CLOSED, call);
    tag_init(&call->sent_tag, CGRPC_TAG_SENT, call);
    grpc_call_error error = grpc_server_request_call(server->server, &call->call, &call->details,
                                                     &call->request_metadata, server->cq, server->cq,
                                                     &call->new_call_tag);
    if (error != GRPC_CALL_OK) {
        call_free(call);
    }
}

// Starts one single-op batch holding a reference; releases it at once if core refused the batch
// (then no event will ever come for it).
static void call_start_op(cgrpc_call *call, grpc_op *op, cgrpc_tag *tag) {
    call_retain(call);
    if (grpc_call_start_batch(call->call, op, 1, tag, NULL) != GRPC_CALL_OK) {
        call_release(call);
    }
}

static int64_t deadline_ns_from(gpr_timespec deadline) {
    if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0) {
        return -1;
    }
    gpr_timespec monotonic = gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC);
    gpr_timespec left = gpr_time_sub(monotonic, gpr_now(GPR_CLOCK_MONOTONIC));
    // gRPC allows timeouts up to 99999999 hours; beyond ~292 years the nanoseconds overflow, and
    // such a deadline is no deadline.
    if (left.tv_sec >= INT64_MAX / 1000000000LL - 1) {
        return -1;
    }
    int64_t ns = left.tv_sec * 1000000000LL + left.tv_nsec;
    return ns < 0 ? 0 : ns;
}

static void on_new_call(cgrpc_call *call, int success) {
    cgrpc_server *server = call->server;
    if (!success) {
        call_free(call);  // a slot flushed by shutdown: no grpc_call was created
        return;
    }
    pthread_mutex_lock(&server->mutex);
    server->live_calls++;
    call->refs = 1;  // held by this function until both batches are queued
    int repost = !server->shutting_down;
    pthread_mutex_unlock(&server->mutex);
    if (repost) {
        cgrpc_slot_post(server);
    }

    grpc_op receive;
    memset(&receive, 0, sizeof receive);
    receive.op = GRPC_OP_RECV_MESSAGE;
    receive.data.recv_message.recv_message = &call->request;
    call_start_op(call, &receive, &call->received_tag);

    grpc_op close;
    memset(&close, 0, sizeof close);
    close.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    close.data.recv_close_on_server.cancelled = &call->close_cancelled;
    call_start_op(call, &close, &call->closed_tag);

    call_release(call);
}

// Delivers cancellation to Swift if it is due: handed over, cancelled, unanswered, not yet told.
static void deliver_cancel_if_due(cgrpc_call *call) {
    cgrpc_server *server = call->server;
    pthread_mutex_lock(&server->mutex);
    int due = call->handed_over && call->cancelled && !call->answered && !call->cancel_delivered;
    if (due) {
        call->cancel_delivered = 1;
    }
    pthread_mutex_unlock(&server->mutex);
    if (due) {
        server->on_cancel(server->context, call);
    }
}

static void on_received(cgrpc_call *call, int success) {
    cgrpc_server *server = call->server;
    if (!success || call->request == NULL) {
        // The client went away before sending its request, or half-closed without one. Nobody in
        // Swift knows this call, so answer it here; the answer is dropped if the client is gone.
        call_retain(call);  // the owed answer
        static const char reason[] = "the request message did not arrive";
        cgrpc_call_respond(call, success ? GRPC_STATUS_INTERNAL : GRPC_STATUS_CANCELLED, reason,
                           sizeof reason - 1, NULL, 0);
        call_release(call);
        return;
    }

    grpc_byte_buffer_reader reader;
    grpc_slice request = grpc_empty_slice();
    if (grpc_byte_buffer_reader_init(&reader, call->request)) {
        request = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
    }
    grpc_byte_buffer_destroy(call->request);
    call->request = NULL;

    pthread_mutex_lock(&server->mutex);
    call->refs++;  // the answer Swift now owes
    call->handed_over = 1;
    pthread_mutex_unlock(&server->mutex);

    grpc_slice method = call->details.method;
    server->on_call(server->context, call, (const char *)GRPC_SLICE_START_PTR(method), GRPC_SLICE_LENGTH(method),
                    GRPC_SLICE_START_PTR(request), GRPC_SLICE_LENGTH(request), deadline_ns_from(call->details.deadline));
    grpc_slice_unref(request);

    // Cancellation may have arrived before the request did; tell Swift now that it knows the call.
    deliver_cancel_if_due(call);
    call_release(call);
}

static void on_closed(cgrpc_call *call) {
    if (call->close_cancelled) {
        pthread_mutex_lock(&call->server->mutex);
        call->cancelled = 1;
        pthread_mutex_unlock(&call->server->mutex);
        deliver_cancel_if_due(call);
    }
    call_release(call);
}

void cgrpc_call_handle_event(cgrpc_tag *tag, int success) {
    cgrpc_call *call = tag->call;
    switch (tag->kind) {
    case CGRPC_TAG_NEW_CALL:
        on_new_call(call, success);
        break;
    case CGRPC_TAG_RECEIVED:
        on_received(call, success);
        break;
    case CGRPC_TAG_CLOSED:
        on_closed(call);
        break;
    case CGRPC_TAG_SENT:
        call_release(call);
        break;
    case CGRPC_TAG_SHUTDOWN:
        break;  // handled by the server loop
    }
}

int cgrpc_call_respond(cgrpc_call *call, int status, const char *message, size_t message_len,
                       const uint8_t *response, size_t response_len) {
    cgrpc_server *server = call->server;
    pthread_mutex_lock(&server->mutex);
    int first = !call->answered;
    call->answered = 1;
    pthread_mutex_unlock(&server->mutex);
    if (!first) {
        return 0;
    }

    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t count = 0;
    ops[count++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (status == GRPC_STATUS_OK) {
        grpc_slice bytes = grpc_slice_from_copied_buffer((const char *)response, response_len);
        call->response = grpc_raw_byte_buffer_create(&bytes, 1);
        grpc_slice_unref(bytes);  // the byte buffer took its own reference
        ops[count].op = GRPC_OP_SEND_MESSAGE;
        ops[count++].data.send_message.send_message = call->response;
    }
    call->status_message = grpc_slice_from_copied_buffer(message != NULL ? message : "", message_len);
    ops[count].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[count].data.send_status_from_server.status = (grpc_status_code)status;
    ops[count++].data.send_status_from_server.status_details = &call->status_message;

    call_retain(call);  // the send batch
    if (grpc_call_start_batch(call->call, ops, count, &call->sent_tag, NULL) != GRPC_CALL_OK) {
        call_release(call);
    }
    call_release(call);  // the answer is no longer owed
    return 1;
}
