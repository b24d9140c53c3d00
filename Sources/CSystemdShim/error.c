// csd_error: what failed, in words an operator can act on, plus the D-Bus error name callers branch on.
#define _GNU_SOURCE // the GNU strerror_r, which returns the text instead of filling a buffer it may ignore
#include "CSystemdShim.h"
#include "shim_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int csd_error_set(csd_error *error, int code, const sd_bus_error *bus_error, const char *format, ...) {
    // sd-bus's convention is a negative errno; anything else here is a bug of ours, but still a failure.
    if (code >= 0) code = -EIO;
    error->code = code;
    error->name[0] = 0;
    if (bus_error != NULL && bus_error->name != NULL) snprintf(error->name, sizeof(error->name), "%s", bus_error->name);

    char what[512];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(what, sizeof(what), format, arguments);
    va_end(arguments);

    if (error->name[0] != 0) {
        // systemd's own messages are sentences already ("Unit x.scope already exists."); the name is what a
        // search engine (and the Swift side) recognises.
        const char *reason = bus_error->message != NULL ? bus_error->message : "no message";
        snprintf(error->message, sizeof(error->message), "%s: %s (%s)", what, reason, error->name);
    } else {
        char buffer[128];
        snprintf(error->message, sizeof(error->message), "%s: %s", what, strerror_r(-code, buffer, sizeof(buffer)));
    }
    return code;
}

int csd_error_plain(csd_error *error, int code, const char *format, ...) {
    if (code >= 0) code = -EIO;
    error->code = code;
    error->name[0] = 0;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(error->message, sizeof(error->message), format, arguments);
    va_end(arguments);
    return code;
}

int csd_error_has_name(const csd_error *error, const char *name) { return strcmp(error->name, name) == 0; }

int csd_error_message(csd_error *error, int code, const char *what, const char *step) {
    // Building a message fails only on memory or a bad argument (a name that is not valid UTF-8, say); reading
    // one fails when systemd answered with another signature than the one documented.
    return csd_error_set(error, code, NULL, "%s: %s", what, step);
}
