// libsystemd as a library loaded at run time: dlopen, then dlsym of every function the shim calls, once per
// process.
#include "CSystemdShim.h"
#include "shim_private.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

// What to tell an operator whose image lacks libsystemd (or has something else under its name).
#define CSD_INSTALL_HINT "install libsystemd0 (Debian: apt-get install libsystemd0)"

csd_library csd_libsystemd;

static pthread_once_t csd_library_once = PTHREAD_ONCE_INIT;
static int csd_library_result = -1;
// Why loading failed; written inside the once routine only, so readers after pthread_once see it complete.
static char csd_library_message[512] = "libsystemd was not loaded";

// dlerror's text, or a fixed one: it returns NULL when it has nothing to say.
static const char *csd_library_dlerror(void) {
    const char *text = dlerror();
    return text ? text : "no reason given";
}

int csd_library_load(const char *name, csd_library *library, char *message, size_t size) {
    memset(library, 0, sizeof(*library));
    // RTLD_NOW: an incomplete libsystemd (or a dependency of it) fails here, with a message, not at the first call
    // through a lazily bound symbol. RTLD_LOCAL: its symbols serve this table only.
    void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        // The hint first: the loader's text can be long, and a cut message must keep what to do.
        snprintf(message, size, "%s could not be loaded; %s (%s)", name, CSD_INSTALL_HINT, csd_library_dlerror());
        return -1;
    }
    csd_library found;
    // Each member gets the type <systemd/sd-bus.h> declares for its function (see shim_private.h), so every call
    // through the table passes exactly the arguments a linked call would.
#define CSD_RESOLVE(member, symbol)                                                                                   \
    do {                                                                                                              \
        (void)dlerror();                                                                                              \
        found.member = (__typeof__(found.member))dlsym(handle, #symbol);                                              \
        if (found.member == NULL) {                                                                                   \
            snprintf(message, size, "%s has no %s (systemd 240 or newer is needed); %s (%s)", name, #symbol,          \
                     CSD_INSTALL_HINT, csd_library_dlerror());                                                        \
            dlclose(handle);                                                                                          \
            return -1;                                                                                                \
        }                                                                                                             \
    } while (0)
    CSD_RESOLVE(bus_new, sd_bus_new);
    CSD_RESOLVE(bus_set_address, sd_bus_set_address);
    CSD_RESOLVE(bus_set_bus_client, sd_bus_set_bus_client);
    CSD_RESOLVE(bus_start, sd_bus_start);
    CSD_RESOLVE(bus_is_ready, sd_bus_is_ready);
    CSD_RESOLVE(bus_is_open, sd_bus_is_open);
    CSD_RESOLVE(bus_close_unref, sd_bus_close_unref);
    CSD_RESOLVE(bus_get_fd, sd_bus_get_fd);
    CSD_RESOLVE(bus_process, sd_bus_process);
    CSD_RESOLVE(bus_wait, sd_bus_wait);
    CSD_RESOLVE(bus_call, sd_bus_call);
    CSD_RESOLVE(bus_match_signal_async, sd_bus_match_signal_async);
    CSD_RESOLVE(slot_unref, sd_bus_slot_unref);
    CSD_RESOLVE(message_new_method_call, sd_bus_message_new_method_call);
    CSD_RESOLVE(message_append, sd_bus_message_append);
    CSD_RESOLVE(message_open_container, sd_bus_message_open_container);
    CSD_RESOLVE(message_close_container, sd_bus_message_close_container);
    CSD_RESOLVE(message_read, sd_bus_message_read);
    CSD_RESOLVE(message_enter_container, sd_bus_message_enter_container);
    CSD_RESOLVE(message_exit_container, sd_bus_message_exit_container);
    CSD_RESOLVE(message_unref, sd_bus_message_unref);
    CSD_RESOLVE(error_free, sd_bus_error_free);
#undef CSD_RESOLVE
    // The handle is never closed: the table points into the library for the process's lifetime.
    *library = found;
    if (size > 0) message[0] = 0;
    return 0;
}

static void csd_library_run(void) {
    // Loading here, not at exec, is the point: a node plugin that never asks systemd for anything (placement
    // cgroup or none), or runs where libsystemd is missing, never needs it.
    csd_library_result =
        csd_library_load(CSD_LIBRARY_NAME, &csd_libsystemd, csd_library_message, sizeof(csd_library_message));
}

int csd_library_init(const char **message) {
    pthread_once(&csd_library_once, csd_library_run);
    if (message != NULL) *message = csd_library_message;
    return csd_library_result;
}

int csd_library_probe(const char *name, char *message, size_t size) {
    csd_library scratch;
    return csd_library_load(name, &scratch, message, size);
}
