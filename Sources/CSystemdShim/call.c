// One method call to systemd's manager under a deadline: build, send, wait for the reply, translate failures.
#include "CSystemdShim.h"
#include "shim_private.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static uint64_t csd_now(void) {
    struct timespec now;
    // CLOCK_MONOTONIC, like sd-bus's own timeouts: a wall-clock step must not cut or stretch a wait.
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

uint64_t csd_deadline(uint64_t timeout_usec) {
    // sd-bus reads a timeout of 0 as "use the default (25 s)"; our callers mean "as short as possible".
    if (timeout_usec == 0) timeout_usec = 1;
    uint64_t now = csd_now();
    return timeout_usec > UINT64_MAX - now ? UINT64_MAX : now + timeout_usec;
}

uint64_t csd_remaining(uint64_t deadline) {
    uint64_t now = csd_now();
    return deadline > now ? deadline - now : 0;
}

int csd_bus_drain(csd_bus *bus, csd_error *error) {
    // sd_bus_process dispatches one message per call and returns 0 once nothing is left to do without waiting.
    // Signals nobody matches are dropped; a JobRemoved match left from an earlier call was removed with its job.
    for (;;) {
        int r = csd_libsystemd.bus_process(bus->bus, NULL);
        if (r == 0) return 0;
        if (r < 0) return csd_error_set(error, r, NULL, "reading what systemd sent on the connection");
    }
}

int csd_call_new(csd_bus *bus, const char *path, const char *interface, const char *member, sd_bus_message **message,
                 const char *what, csd_error *error) {
    // On a direct connection there is no bus daemon to route by destination; systemd ignores it there, and the
    // same message then works on both kinds of connection.
    int r = csd_libsystemd.message_new_method_call(bus->bus, message, CSD_SYSTEMD_NAME, path, interface, member);
    if (r < 0) {
        *message = NULL;
        return csd_error_message(error, r, what, "creating the method call");
    }
    return 0;
}

int csd_call(csd_bus *bus, sd_bus_message *message, uint64_t deadline, sd_bus_message **reply, const char *what,
             csd_error *error) {
    *reply = NULL;
    uint64_t remaining = csd_remaining(deadline);
    if (remaining == 0) {
        csd_libsystemd.message_unref(message);
        return csd_error_plain(error, -ETIMEDOUT, "%s: the deadline passed before systemd could be asked", what);
    }
    sd_bus_error bus_error = SD_BUS_ERROR_NULL;
    // sd_bus_call queues any other message that arrives meanwhile (a JobRemoved signal, say) for the next
    // sd_bus_process: csd_job_wait finds it there.
    int r = csd_libsystemd.bus_call(bus->bus, message, remaining, &bus_error, reply);
    csd_libsystemd.message_unref(message);
    if (r < 0) {
        if (r == -ETIMEDOUT && (bus_error.name == NULL || strcmp(bus_error.name, SD_BUS_ERROR_TIMEOUT) == 0)) {
            // sd-bus names its own timeout like an error reply; saying how long we waited is more useful. (A bus
            // daemon's NoReply, "recipient disconnected", also maps to -ETIMEDOUT but keeps its own words.)
            r = csd_error_plain(error, r, "%s: systemd did not answer within %llu ms", what,
                                (unsigned long long)(remaining + 999) / 1000);
        } else {
            r = csd_error_set(error, r, &bus_error, "%s", what);
        }
        csd_libsystemd.error_free(&bus_error);
        *reply = NULL;
        return r;
    }
    csd_libsystemd.error_free(&bus_error);
    return 0;
}
