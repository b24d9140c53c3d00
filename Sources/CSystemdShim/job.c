// A job of systemd's manager (what StartTransientUnit and StopUnit queue) and waiting for it to finish: the
// manager announces the end of every job with the signal JobRemoved(id, job path, unit, result).
#include "CSystemdShim.h"
#include "shim_private.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

// JobRemoved handler; `userdata` is the BORROWED csd_job being waited for. Signals of other jobs are ignored.
static int csd_job_removed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
    (void)ret_error;
    csd_job *job = userdata;
    uint32_t id = 0;
    const char *path = NULL;
    const char *unit = NULL;
    const char *result = NULL;
    // A signal we cannot read is not ours to fail on: the wait ends at its deadline instead.
    if (csd_libsystemd.message_read(message, "uoss", &id, &path, &unit, &result) < 0) return 0;
    // Before csd_job_expect the path is "", which matches no job: csd_job_wait dispatches only after it.
    if (job->removed || job->path[0] == 0 || strcmp(path, job->path) != 0) return 0;
    snprintf(job->result, sizeof(job->result), "%s", result);
    job->removed = 1;
    return 0;
}

int csd_job_watch(csd_bus *bus, csd_job *job, uint64_t deadline, const char *what, csd_error *error) {
    memset(job, 0, sizeof(*job));
    // A bus client matches by sender, so another peer cannot fake the signal. A direct connection knows no
    // sender field (systemd is the only peer), so it matches on the manager's object and interface alone.
    // Asynchronous: for a bus client the daemon processes AddMatch before the call we send next, so no signal
    // of that call's job can slip past, and we do not wait a round trip (or sd-bus's 25 s default) for it.
    int r = csd_libsystemd.bus_match_signal_async(bus->bus, &job->slot, bus->bus_client ? CSD_SYSTEMD_NAME : NULL,
                                                  CSD_MANAGER_PATH, CSD_MANAGER_INTERFACE, "JobRemoved",
                                                  csd_job_removed, NULL, job);
    if (r < 0) {
        job->slot = NULL;
        return csd_error_set(error, r, NULL, "%s: watching for the end of its job", what);
    }
    if (bus->subscribed) return 0;
    // Without Subscribe the manager sends a bus client no signals at all. A direct connection gets them anyway
    // (systemd answers Subscribe there without doing anything), so the call costs one round trip per connection.
    char subscribe[384];
    snprintf(subscribe, sizeof(subscribe), "%s: Subscribe", what);
    sd_bus_message *message = NULL;
    sd_bus_message *reply = NULL;
    r = csd_call_new(bus, CSD_MANAGER_PATH, CSD_MANAGER_INTERFACE, "Subscribe", &message, subscribe, error);
    if (r >= 0) r = csd_call(bus, message, deadline, &reply, subscribe, error);
    csd_libsystemd.message_unref(reply);
    if (r < 0 && !csd_error_has_name(error, CSD_ERROR_ALREADY_SUBSCRIBED)) {
        csd_job_unwatch(job);
        return r;
    }
    bus->subscribed = 1;
    return 0;
}

int csd_job_expect(csd_job *job, sd_bus_message *reply, const char *what, csd_error *error) {
    const char *path = NULL;
    int r = csd_libsystemd.message_read(reply, "o", &path);
    if (r < 0) return csd_error_message(error, r, what, "reading the job path from systemd's answer");
    // The path is BORROWED from the reply; the job outlives it.
    if ((size_t)snprintf(job->path, sizeof(job->path), "%s", path) >= sizeof(job->path)) {
        job->path[0] = 0;
        return csd_error_set(error, -ENAMETOOLONG, NULL, "%s: systemd answered with a job path too long to track",
                             what);
    }
    return 0;
}

int csd_job_wait(csd_bus *bus, csd_job *job, uint64_t deadline, const char *what, csd_error *error) {
    while (!job->removed) {
        // Dispatches queued messages first (the signal may already have arrived during the call), then reads.
        int r = csd_libsystemd.bus_process(bus->bus, NULL);
        if (r < 0) return csd_error_set(error, r, NULL, "%s: waiting for its job %s to finish", what, job->path);
        if (r > 0) continue;
        uint64_t remaining = csd_remaining(deadline);
        if (remaining == 0) {
            // The job goes on in systemd; the caller decides whether to look again or give up.
            return csd_error_plain(error, -ETIMEDOUT, "%s: its job %s was still running at the deadline", what,
                                   job->path);
        }
        r = csd_libsystemd.bus_wait(bus->bus, remaining);
        if (r < 0) return csd_error_set(error, r, NULL, "%s: waiting for its job %s to finish", what, job->path);
    }
    if (strcmp(job->result, "done") == 0) return 0;
    // "failed", "timeout", "canceled", "dependency", "skipped", ...: systemd's journal has the details.
    return csd_error_plain(error, -EIO, "%s: its job ended with result '%s', not 'done'", what, job->result);
}

void csd_job_unwatch(csd_job *job) {
    // For a bus client this also sends RemoveMatch (asynchronously), so the daemon stops forwarding JobRemoved.
    if (job->slot != NULL) csd_libsystemd.slot_unref(job->slot);
    job->slot = NULL;
}
