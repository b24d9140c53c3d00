// Routes gRPC core's log lines (gpr_log) to a callback, remembering the last error so that a
// failed start can say why (grpc_server_add_http2_port only reports through the log).
#include <string.h>

#include <grpc/support/log.h>

#include "shim_private.h"

static cgrpc_log_callback log_callback = NULL;
static pthread_mutex_t last_error_mutex = PTHREAD_MUTEX_INITIALIZER;
static char last_error[256];

static void log_bridge(gpr_log_func_args *args) {
    int severity = args->severity == GPR_LOG_SEVERITY_DEBUG  ? 0
                   : args->severity == GPR_LOG_SEVERITY_INFO ? 1
                                                             : 2;
    if (severity == 2) {
        pthread_mutex_lock(&last_error_mutex);
        strncpy(last_error, args->message, sizeof last_error - 1);
        last_error[sizeof last_error - 1] = '\0';
        pthread_mutex_unlock(&last_error_mutex);
    }
    if (log_callback != NULL) {
        log_callback(severity, args->file, args->line, args->message);
    }
}

void cgrpc_log_route(cgrpc_log_callback callback, int min_severity) {
    log_callback = callback;
    gpr_set_log_verbosity(min_severity <= 0   ? GPR_LOG_SEVERITY_DEBUG
                          : min_severity == 1 ? GPR_LOG_SEVERITY_INFO
                                              : GPR_LOG_SEVERITY_ERROR);
    gpr_set_log_function(log_bridge);
}

void cgrpc_log_last_error(char *buffer, size_t buffer_len) {
    pthread_mutex_lock(&last_error_mutex);
    strncpy(buffer, last_error, buffer_len - 1);
    buffer[buffer_len - 1] = '\0';
    last_error[0] = '\0';
    pthread_mutex_unlock(&last_error_mutex);
}
