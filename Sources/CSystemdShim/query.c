// Questions to systemd's manager (and, for a bus client, to the bus daemon) that change nothing: the manager's
// version, a unit's state, the units matching a pattern, the PID behind a bus name.
#include "CSystemdShim.h"
#include "shim_private.h"

#include <errno.h>
#include <stdio.h>

// Reads the string property `property` of `interface` at `path` (org.freedesktop.DBus.Properties.Get) into
// `value` (`size` bytes). Returns 0, or a negative errno.
static int csd_query_string_property(csd_bus *bus, const char *path, const char *interface, const char *property,
                                     uint64_t deadline, char *value, size_t size, const char *what,
                                     csd_error *error) {
    sd_bus_message *message = NULL;
    sd_bus_message *reply = NULL;
    int r = csd_call_new(bus, path, CSD_PROPERTIES_INTERFACE, "Get", &message, what, error);
    if (r < 0) return r;
    r = csd_libsystemd.message_append(message, "ss", interface, property);
    if (r < 0) {
        csd_libsystemd.message_unref(message);
        return csd_error_message(error, r, what, "building the method call");
    }
    r = csd_call(bus, message, deadline, &reply, what, error);
    if (r < 0) return r;
    const char *text = NULL;
    r = csd_libsystemd.message_read(reply, "v", "s", &text);
    if (r < 0) {
        r = csd_error_message(error, r, what, "reading the property from systemd's answer");
    } else {
        // The text is BORROWED from the reply, which goes now.
        snprintf(value, size, "%s", text);
        r = 0;
    }
    csd_libsystemd.message_unref(reply);
    return r;
}

int csd_manager_version(csd_bus *bus, uint64_t timeout_usec, char *version, size_t size, csd_error *error) {
    uint64_t deadline = csd_deadline(timeout_usec);
    int r = csd_bus_drain(bus, error);
    if (r < 0) return r;
    return csd_query_string_property(bus, CSD_MANAGER_PATH, CSD_MANAGER_INTERFACE, "Version", deadline, version,
                                     size, "reading systemd's Version", error);
}

int csd_unit_active_state(csd_bus *bus, const char *name, uint64_t timeout_usec, char *state, size_t size,
                          csd_error *error) {
    uint64_t deadline = csd_deadline(timeout_usec);
    if (size > 0) state[0] = 0;
    char what[320];
    snprintf(what, sizeof(what), "GetUnit %s", name);
    int r = csd_bus_drain(bus, error);
    if (r < 0) return r;
    sd_bus_message *message = NULL;
    sd_bus_message *reply = NULL;
    // GetUnit, unlike LoadUnit, does not load a unit it does not have: NoSuchUnit is the answer "not there".
    r = csd_call_new(bus, CSD_MANAGER_PATH, CSD_MANAGER_INTERFACE, "GetUnit", &message, what, error);
    if (r < 0) return r;
    r = csd_libsystemd.message_append(message, "s", name);
    if (r < 0) {
        csd_libsystemd.message_unref(message);
        return csd_error_message(error, r, what, "building the method call");
    }
    r = csd_call(bus, message, deadline, &reply, what, error);
    if (r < 0) return csd_error_has_name(error, CSD_ERROR_NO_SUCH_UNIT) ? 0 : r;
    const char *borrowed = NULL;
    char path[256];
    r = csd_libsystemd.message_read(reply, "o", &borrowed);
    if (r >= 0 && (size_t)snprintf(path, sizeof(path), "%s", borrowed) >= sizeof(path)) r = -ENAMETOOLONG;
    csd_libsystemd.message_unref(reply);
    if (r < 0) return csd_error_message(error, r, what, "reading the unit's object path from systemd's answer");
    snprintf(what, sizeof(what), "reading the ActiveState of %s", name);
    r = csd_query_string_property(bus, path, CSD_UNIT_INTERFACE, "ActiveState", deadline, state, size, what, error);
    return r < 0 ? r : 1;
}

int csd_manager_list_units(csd_bus *bus, const char *pattern, uint64_t timeout_usec, csd_unit_visitor visit,
                           void *context, csd_error *error) {
    uint64_t deadline = csd_deadline(timeout_usec);
    char what[320];
    snprintf(what, sizeof(what), "ListUnitsByPatterns %s", pattern);
    int r = csd_bus_drain(bus, error);
    if (r < 0) return r;
    sd_bus_message *message = NULL;
    sd_bus_message *reply = NULL;
    r = csd_call_new(bus, CSD_MANAGER_PATH, CSD_MANAGER_INTERFACE, "ListUnitsByPatterns", &message, what, error);
    if (r < 0) return r;
    // No state filter (every loaded unit, whatever its state), one name pattern.
    r = csd_libsystemd.message_append(message, "asas", 0, 1, pattern);
    if (r < 0) {
        csd_libsystemd.message_unref(message);
        return csd_error_message(error, r, what, "building the method call");
    }
    r = csd_call(bus, message, deadline, &reply, what, error);
    if (r < 0) return r;
    r = csd_libsystemd.message_enter_container(reply, 'a', "(ssssssouso)");
    while (r >= 0) {
        // name, description, load state, active state, sub state, followed unit, unit path, job id, job type,
        // job path: only the first and the fourth matter here.
        const char *name = NULL;
        const char *description = NULL;
        const char *load_state = NULL;
        const char *active_state = NULL;
        const char *sub_state = NULL;
        const char *following = NULL;
        const char *unit_path = NULL;
        uint32_t job_id = 0;
        const char *job_type = NULL;
        const char *job_path = NULL;
        r = csd_libsystemd.message_read(reply, "(ssssssouso)", &name, &description, &load_state, &active_state,
                                        &sub_state, &following, &unit_path, &job_id, &job_type, &job_path);
        if (r <= 0) break;
        visit(context, name, active_state);
    }
    if (r >= 0) r = csd_libsystemd.message_exit_container(reply);
    csd_libsystemd.message_unref(reply);
    if (r < 0) return csd_error_message(error, r, what, "reading the units from systemd's answer");
    return 0;
}

int csd_bus_name_owner_pid(csd_bus *bus, const char *name, uint64_t timeout_usec, pid_t *pid, csd_error *error) {
    uint64_t deadline = csd_deadline(timeout_usec);
    *pid = 0;
    char what[320];
    snprintf(what, sizeof(what), "asking the bus daemon for the PID of %s", name);
    // A direct connection has no daemon to ask: the socket's peer is the answer (csd_bus_peer_pid).
    if (!bus->bus_client) return csd_error_set(error, -EOPNOTSUPP, NULL, "%s on a direct connection", what);
    int r = csd_bus_drain(bus, error);
    if (r < 0) return r;
    sd_bus_message *message = NULL;
    sd_bus_message *reply = NULL;
    r = csd_libsystemd.message_new_method_call(bus->bus, &message, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                               "org.freedesktop.DBus", "GetConnectionUnixProcessID");
    if (r < 0) return csd_error_message(error, r, what, "creating the method call");
    r = csd_libsystemd.message_append(message, "s", name);
    if (r < 0) {
        csd_libsystemd.message_unref(message);
        return csd_error_message(error, r, what, "building the method call");
    }
    r = csd_call(bus, message, deadline, &reply, what, error);
    if (r < 0) return r;
    uint32_t value = 0;
    r = csd_libsystemd.message_read(reply, "u", &value);
    csd_libsystemd.message_unref(reply);
    if (r < 0) return csd_error_message(error, r, what, "reading the PID from the answer");
    *pid = (pid_t)value;
    return 0;
}
