// Changing a unit: create a transient scope around a process, signal a unit's processes, stop a unit.
#include "CSystemdShim.h"
#include "shim_private.h"

#include <stdio.h>

// systemd answers NoSuchUnit ("Unit x not loaded.") when asked to stop or signal a unit it does not know (for a
// transient scope: one that was never created, or was collected): nothing is there to act on.
static int csd_unit_is_absent(const csd_error *error) { return csd_error_has_name(error, CSD_ERROR_NO_SUCH_UNIT); }

// Appends StartTransientUnit's arguments after the name and mode: the scope's properties and no auxiliary units.
static int csd_unit_append_scope(sd_bus_message *message, const char *description, pid_t pid) {
    int r = csd_libsystemd.message_open_container(message, 'a', "(sv)");
    if (r < 0) return r;
    r = csd_libsystemd.message_append(message, "(sv)", "Description", "s", description);
    if (r < 0) return r;
    // The process to move into the scope's cgroup. systemd reads the PID in its own PID namespace.
    r = csd_libsystemd.message_append(message, "(sv)", "PIDs", "au", 1, (uint32_t)pid);
    if (r < 0) return r;
    // A scope whose processes are gone, or that failed, is unloaded instead of lingering as "failed": a volume
    // staged again later can reuse the name, and nothing accumulates on the node.
    r = csd_libsystemd.message_append(message, "(sv)", "CollectMode", "s", "inactive-or-failed");
    if (r < 0) return r;
    r = csd_libsystemd.message_close_container(message);
    if (r < 0) return r;
    return csd_libsystemd.message_append(message, "a(sa(sv))", 0);
}

// A manager method's arguments, appended to its call; returns >= 0 or a negative errno.
typedef int (*csd_unit_arguments)(sd_bus_message *message, const void *context);

// Calls the manager's `method` with the arguments `append` adds and waits until the job it queues is finished:
// the job is watched before the call, so its end cannot be missed. With `absent_is_done`, a NoSuchUnit answer
// counts as done (nothing to act on). Returns 0, or a negative errno with `error` filled.
static int csd_unit_job(csd_bus *bus, const char *method, csd_unit_arguments append, const void *context,
                        int absent_is_done, uint64_t deadline, const char *what, csd_error *error) {
    int r = csd_bus_drain(bus, error);
    if (r < 0) return r;
    csd_job job;
    r = csd_job_watch(bus, &job, deadline, what, error);
    if (r < 0) return r;
    sd_bus_message *message = NULL;
    sd_bus_message *reply = NULL;
    r = csd_call_new(bus, CSD_MANAGER_PATH, CSD_MANAGER_INTERFACE, method, &message, what, error);
    if (r >= 0) {
        r = append(message, context);
        if (r < 0) {
            csd_libsystemd.message_unref(message);
            r = csd_error_message(error, r, what, "building the method call");
        } else {
            r = csd_call(bus, message, deadline, &reply, what, error);
            if (r < 0 && absent_is_done && csd_unit_is_absent(error)) {
                csd_job_unwatch(&job);
                return 0;
            }
        }
    }
    if (r >= 0) r = csd_job_expect(&job, reply, what, error);
    // For a scope the process is in its cgroup once the reply arrived; the job's end says it is running.
    if (r >= 0) r = csd_job_wait(bus, &job, deadline, what, error);
    csd_libsystemd.message_unref(reply);
    csd_job_unwatch(&job);
    return r < 0 ? r : 0;
}

typedef struct csd_scope_request {
    const char *name;
    const char *description;
    pid_t pid;
} csd_scope_request;

static int csd_unit_append_start(sd_bus_message *message, const void *context) {
    const csd_scope_request *scope = context;
    // "fail": refuse when a unit of that name exists (UnitExists), rather than replace another volume's scope.
    int r = csd_libsystemd.message_append(message, "ss", scope->name, "fail");
    if (r < 0) return r;
    return csd_unit_append_scope(message, scope->description, scope->pid);
}

int csd_unit_start_scope(csd_bus *bus, const char *name, const char *description, pid_t pid, uint64_t timeout_usec,
                         csd_error *error) {
    char what[320];
    snprintf(what, sizeof(what), "StartTransientUnit %s for PID %d", name, (int)pid);
    csd_scope_request scope = {name, description, pid};
    return csd_unit_job(bus, "StartTransientUnit", csd_unit_append_start, &scope, 0, csd_deadline(timeout_usec),
                        what, error);
}

static int csd_unit_append_stop(sd_bus_message *message, const void *context) {
    // "replace": a stop replaces whatever job the unit has queued (a start, say), as `systemctl stop` does.
    return csd_libsystemd.message_append(message, "ss", (const char *)context, "replace");
}

int csd_unit_stop(csd_bus *bus, const char *name, uint64_t timeout_usec, csd_error *error) {
    char what[320];
    snprintf(what, sizeof(what), "StopUnit %s", name);
    return csd_unit_job(bus, "StopUnit", csd_unit_append_stop, name, 1, csd_deadline(timeout_usec), what, error);
}

int csd_unit_kill(csd_bus *bus, const char *name, int signal, uint64_t timeout_usec, csd_error *error) {
    uint64_t deadline = csd_deadline(timeout_usec);
    char what[320];
    snprintf(what, sizeof(what), "KillUnit %s with signal %d", name, signal);
    int r = csd_bus_drain(bus, error);
    if (r < 0) return r;
    sd_bus_message *message = NULL;
    sd_bus_message *reply = NULL;
    r = csd_call_new(bus, CSD_MANAGER_PATH, CSD_MANAGER_INTERFACE, "KillUnit", &message, what, error);
    if (r < 0) return r;
    // "all": every process of the unit's cgroup (a scope has no main process). Not "all-fail": a scope whose
    // processes already exited is no error.
    r = csd_libsystemd.message_append(message, "ssi", name, "all", (int32_t)signal);
    if (r < 0) {
        csd_libsystemd.message_unref(message);
        return csd_error_message(error, r, what, "building the method call");
    }
    r = csd_call(bus, message, deadline, &reply, what, error);
    csd_libsystemd.message_unref(reply);
    if (r < 0 && csd_unit_is_absent(error)) return 0;
    return r < 0 ? r : 0;
}
