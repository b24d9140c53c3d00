// Internal to CSystemdShim: the table of libsystemd functions, the connection struct, the error, call and job
// helpers the .c files share. Ownership is as in include/CSystemdShim.h; inside the shim:
//  - a csd_bus OWNS `bus` (its sd_bus reference, dropped by csd_bus_close);
//  - every sd_bus_message * a helper returns through an out-parameter is OWNED by the caller, who drops it with
//    csd_libsystemd.message_unref; csd_call takes ownership of the message it sends (it drops it, sent or not);
//  - a csd_job OWNS `slot` (its JobRemoved match, dropped by csd_job_unwatch) and the copy of its job path.
#ifndef CSYSTEMDSHIM_PRIVATE_H
#define CSYSTEMDSHIM_PRIVATE_H

#include "CSystemdShim.h"

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

// The manager's well-known name, object and interface.
#define CSD_SYSTEMD_NAME "org.freedesktop.systemd1"
#define CSD_MANAGER_PATH "/org/freedesktop/systemd1"
#define CSD_MANAGER_INTERFACE "org.freedesktop.systemd1.Manager"
#define CSD_UNIT_INTERFACE "org.freedesktop.systemd1.Unit"
#define CSD_PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

// Error names systemd answers with that the shim treats specially.
#define CSD_ERROR_NO_SUCH_UNIT "org.freedesktop.systemd1.NoSuchUnit"
#define CSD_ERROR_ALREADY_SUBSCRIBED "org.freedesktop.systemd1.AlreadySubscribed"

/// The sd-bus functions the shim calls, resolved with dlsym from libsystemd.so.0, which is opened with dlopen on
/// first use instead of being linked: a node without libsystemd still starts. Each member has exactly the type
/// <systemd/sd-bus.h> declares for the function, so a call through it (the variadic sd_bus_message_append/read
/// included) passes the same arguments a linked call would.
typedef struct csd_library {
    __typeof__(sd_bus_new) *bus_new;
    __typeof__(sd_bus_set_address) *bus_set_address;
    __typeof__(sd_bus_set_bus_client) *bus_set_bus_client;
    __typeof__(sd_bus_start) *bus_start;
    __typeof__(sd_bus_is_ready) *bus_is_ready;
    __typeof__(sd_bus_is_open) *bus_is_open;
    __typeof__(sd_bus_close_unref) *bus_close_unref;
    __typeof__(sd_bus_get_fd) *bus_get_fd;
    __typeof__(sd_bus_process) *bus_process;
    __typeof__(sd_bus_wait) *bus_wait;
    __typeof__(sd_bus_call) *bus_call;
    __typeof__(sd_bus_match_signal_async) *bus_match_signal_async;
    __typeof__(sd_bus_slot_unref) *slot_unref;
    __typeof__(sd_bus_message_new_method_call) *message_new_method_call;
    __typeof__(sd_bus_message_append) *message_append;
    __typeof__(sd_bus_message_open_container) *message_open_container;
    __typeof__(sd_bus_message_close_container) *message_close_container;
    __typeof__(sd_bus_message_read) *message_read;
    __typeof__(sd_bus_message_enter_container) *message_enter_container;
    __typeof__(sd_bus_message_exit_container) *message_exit_container;
    __typeof__(sd_bus_message_unref) *message_unref;
    __typeof__(sd_bus_error_free) *error_free;
} csd_library;

/// The table the shim calls libsystemd through. Written once, inside csd_library_init's pthread_once; read only
/// after csd_library_init returned 0 (pthread_once orders the write before those reads). Every csd_bus exists
/// only after that, so code that has a connection may call through it freely.
__attribute__((visibility("hidden"))) extern csd_library csd_libsystemd;

/// Opens `name` with dlopen(RTLD_NOW | RTLD_LOCAL) and resolves every member of `library`. Returns 0 with
/// `library` filled (the library stays loaded for good), or -1 with `library` zeroed and a sentence saying what
/// failed and what to install in `message` (`size` bytes, always NUL-terminated when size > 0). `name` is
/// BORROWED.
__attribute__((visibility("hidden"))) int csd_library_load(const char *name, csd_library *library, char *message,
                                                           size_t size);

struct csd_bus {
    sd_bus *bus;
    /// Non-zero for a client of a bus daemon (the system bus), 0 for a direct connection to systemd.
    int bus_client;
    /// Non-zero once Subscribe succeeded on this connection (it lasts as long as the connection).
    int subscribed;
};

/// Fills `error` and returns its code: `code` (a negative errno; anything else becomes -EIO), the name of
/// `bus_error` when it holds one, and a message made of printf-style `format` (what was asked), ": ", and the
/// reason (`bus_error`'s message and name, or strerror of `code`). `bus_error` (BORROWED) may be NULL.
__attribute__((visibility("hidden"), format(printf, 4, 5))) int
csd_error_set(csd_error *error, int code, const sd_bus_error *bus_error, const char *format, ...);

/// Like csd_error_set without a reason: the message is exactly the formatted sentence (for failures whose
/// errno would add nothing, such as a job that ended badly).
__attribute__((visibility("hidden"), format(printf, 3, 4))) int csd_error_plain(csd_error *error, int code,
                                                                              const char *format, ...);

/// 1 when `error` holds the D-Bus error `name`, else 0.
__attribute__((visibility("hidden"))) int csd_error_has_name(const csd_error *error, const char *name);

/// Monotonic microseconds after `timeout_usec` (at least 1) from now: the deadline of one csd_* function.
__attribute__((visibility("hidden"))) uint64_t csd_deadline(uint64_t timeout_usec);

/// Microseconds left until `deadline`, 0 when it has passed.
__attribute__((visibility("hidden"))) uint64_t csd_remaining(uint64_t deadline);

/// Dispatches every message that has already arrived on `bus` (signals systemd sent since the last call: a
/// direct connection receives all of them, subscribed or not), so they neither pile up in our receive queue
/// (sd-bus fails calls with -ENOBUFS once it holds too many) nor in systemd's send queue. Never waits. Also
/// notices a connection the peer has closed. Returns 0, or a negative errno with `error` filled.
__attribute__((visibility("hidden"))) int csd_bus_drain(csd_bus *bus, csd_error *error);

/// A new method call to `member` of `interface` at `path` of systemd's manager, in `*message` (OWNED). Returns 0,
/// or a negative errno with `error` filled (`what` names the call in the message).
__attribute__((visibility("hidden"))) int csd_call_new(csd_bus *bus, const char *path, const char *interface,
                                                       const char *member, sd_bus_message **message,
                                                       const char *what, csd_error *error);

/// Sends `message` (OWNED; dropped whatever happens) and waits for its reply until `deadline`. Returns 0 with the
/// reply in `*reply` (OWNED), or a negative errno with `*reply` NULL and `error` filled: an error reply gives its
/// D-Bus name and message, a timeout says systemd did not answer in time. `what` names the call.
__attribute__((visibility("hidden"))) int csd_call(csd_bus *bus, sd_bus_message *message, uint64_t deadline,
                                                   sd_bus_message **reply, const char *what, csd_error *error);

/// Fills `error` for a message that could not be built or read (`code` from sd_bus_message_append/read/...).
__attribute__((visibility("hidden"))) int csd_error_message(csd_error *error, int code, const char *what,
                                                            const char *step);

/// Waiting for one job of systemd's manager to finish: its JobRemoved signal. Install the match with
/// csd_job_watch BEFORE the call that queues the job, so a signal sent before the call's reply is read is not
/// lost (sd-bus keeps it queued until csd_job_wait dispatches it).
typedef struct csd_job {
    /// OWNED: the JobRemoved match; NULL when not watching.
    sd_bus_slot *slot;
    /// The object path of the job to wait for (copied from the call's reply by csd_job_expect); "" until then.
    char path[256];
    /// Non-zero once JobRemoved arrived for `path`.
    int removed;
    /// The job's result from JobRemoved ("done", "failed", "canceled", "timeout", "dependency", "skipped", ...).
    char result[64];
} csd_job;

/// Starts watching for JobRemoved on `bus` (and subscribes the connection to the manager's signals, once: a bus
/// client receives none otherwise; a direct connection receives them anyway). `job` is BORROWED for as long as
/// it is watched: it must stay where it is until csd_job_unwatch. Returns 0, or a negative errno.
__attribute__((visibility("hidden"))) int csd_job_watch(csd_bus *bus, csd_job *job, uint64_t deadline,
                                                        const char *what, csd_error *error);

/// Reads the job path from `reply` (a reply whose first argument is the job's object path) into `job`. Returns
/// 0, or a negative errno.
__attribute__((visibility("hidden"))) int csd_job_expect(csd_job *job, sd_bus_message *reply, const char *what,
                                                         csd_error *error);

/// Processes the connection until JobRemoved arrived for the expected job, or `deadline` passed. Returns 0 when
/// the job ended "done"; -EIO with a message naming the result when it ended otherwise; -ETIMEDOUT when it was
/// still running at the deadline; or the connection's error.
__attribute__((visibility("hidden"))) int csd_job_wait(csd_bus *bus, csd_job *job, uint64_t deadline,
                                                       const char *what, csd_error *error);

/// Stops watching (drops the match). Safe on a job that was never watched, and more than once.
__attribute__((visibility("hidden"))) void csd_job_unwatch(csd_job *job);

#endif
