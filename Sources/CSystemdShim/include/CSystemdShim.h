// A narrow shim over libsystemd's sd-bus (Debian libsystemd-dev, systemd >= 240): just what the node plugin
// needs to put a process into a transient systemd scope, the way `systemd-run --scope` does, and to find, signal
// and stop such scopes later. Every symbol of ours starts with `csd_`.
//
// sd-bus builds and reads messages with variadic functions (sd_bus_message_append/read), which Swift cannot call,
// so each D-Bus method the plugin uses gets one typed function here. libsystemd is NOT linked: the first
// csd_bus_open loads CSD_LIBRARY_NAME with dlopen and the shim calls it through function pointers, so a node
// without libsystemd still starts (and places its mounts another way). This header does not even include
// <systemd/sd-bus.h>: Swift sees no sd_bus_* function it could call by mistake (there is nothing to link them
// against). The shim's own sources include it for the types and constants.
//
// Conventions:
//  - Every csd_bus_*, csd_manager_* and csd_unit_* function returning `int` returns 0 (or a documented positive
//    value) on success and a negative errno on failure, sd-bus's own convention; on failure it also fills the
//    caller's csd_error (see below). csd_library_* return -1 and a sentence instead.
//  - Every `timeout_usec` bounds the whole function, waits for jobs included: one deadline is taken when it
//    starts and every call to systemd gets what is left of it. 0 is treated as 1 (sd-bus reads 0 as "its own
//    default of 25 s", which would be a surprise).
//  - Functions that take a csd_bus BLOCK the calling thread for up to their timeout. Never call them from a
//    thread you cannot spare (in Swift: never on the cooperative pool).
//
// Ownership (who frees what):
//  - csd_bus_open returns an OWNED csd_bus in `*bus`; the caller frees it with csd_bus_close exactly once. A
//    csd_bus is not thread-safe: one thread at a time (it may move between threads between calls). It must not
//    be used in a forked child (sd-bus refuses that with -ECHILD).
//  - Every `const char *` argument is BORROWED for the duration of the call only: the shim (or sd-bus) copies
//    what it keeps. Callers may free them on return.
//  - Every `char *` output buffer and every csd_error is BORROWED from the caller, who allocates and frees it;
//    the shim writes a NUL-terminated string that fits (it cuts longer ones).
//  - The strings a csd_unit_visitor receives are BORROWED from the reply being read: valid only until the
//    visitor returns. Copy what you need.
//  - The sd_bus * behind a csd_bus is never exposed.
#ifndef CSYSTEMDSHIM_H
#define CSYSTEMDSHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The library the shim loads: libsystemd's soname on Debian (package libsystemd0).
#define CSD_LIBRARY_NAME "libsystemd.so.0"

/// Sizes of csd_error's buffers. D-Bus error names are at most 255 bytes long.
#define CSD_ERROR_NAME_SIZE 256
#define CSD_ERROR_MESSAGE_SIZE 1024

/// Why a csd_* function failed. The caller allocates it (on its stack is fine) and owns it; functions only
/// write it when they fail, so it need not be cleared first.
typedef struct csd_error {
    /// A negative errno saying what kind of failure it was (-ENOENT: no socket there; -ETIMEDOUT: no answer in
    /// time; -ELIBACC: libsystemd could not be loaded; ...), or 0 when nothing failed.
    int code;
    /// The D-Bus error name systemd (or the bus daemon) answered with, e.g. "org.freedesktop.systemd1.UnitExists".
    /// sd-bus also names some local failures this way ("org.freedesktop.DBus.Error.Disconnected"); "" when there
    /// was no name (a failed connect, a timeout, a job that ended badly).
    char name[CSD_ERROR_NAME_SIZE];
    /// A sentence: what was asked and why it failed, with the D-Bus error's own message when there is one.
    char message[CSD_ERROR_MESSAGE_SIZE];
} csd_error;

/// Once per process, whoever calls first: loads CSD_LIBRARY_NAME (dlopen, RTLD_NOW | RTLD_LOCAL) and resolves
/// every sd-bus function the shim uses. Every call returns the outcome of that one attempt: 0, or -1 when the
/// library or one of its functions could not be loaded. When `message` is not NULL it receives a sentence saying
/// what failed and what to do ("libsystemd.so.0 could not be loaded; install libsystemd0 (...)"), or "" on
/// success: BORROWED, static, valid for the process's lifetime. csd_bus_open calls this itself; call it earlier
/// to learn why connections cannot be made.
int csd_library_init(const char **message);

/// For tests and diagnostics: loads `name` and resolves every function the shim needs exactly as
/// csd_library_init does, into a throwaway table (never the shim's own). Returns 0 when that worked (the library
/// then stays loaded); -1 otherwise, with the sentence csd_library_init would give in `message` (`size` bytes,
/// NUL-terminated when size > 0).
int csd_library_probe(const char *name, char *message, size_t size);

/// One connection to systemd's manager: either directly to a socket systemd listens on (its private socket
/// /run/systemd/private: no bus daemon, no Hello) or as a client of a bus daemon (the system bus socket).
typedef struct csd_bus csd_bus;

/// Connects to the AF_UNIX socket at `socket_path` and waits until the connection is usable (authenticated,
/// and for a bus client, Hello answered). `bus_client` 0: a direct peer connection to systemd; non-zero: a
/// client of the bus daemon listening there. Returns 0 with an OWNED connection in `*bus`, or a negative errno
/// with `*bus` NULL and `error` filled (-ELIBACC when libsystemd could not be loaded).
int csd_bus_open(const char *socket_path, int bus_client, uint64_t timeout_usec, csd_bus **bus, csd_error *error);

/// Closes the connection and frees it, without waiting for anything. `bus` may be NULL. The pointer is invalid
/// afterwards.
void csd_bus_close(csd_bus *bus);

/// 1 while the connection is usable, 0 once sd-bus saw it end (the peer closed it, as systemd does with its
/// private connections on daemon-reexec, or a read or write failed). After a failed call, 0 here means the
/// failure was the connection's: open a new one.
int csd_bus_is_open(csd_bus *bus);

/// The PID of the process at the other end of the socket (SO_PEERCRED: the process that called listen() on it,
/// i.e. systemd, also for a socket-activated bus daemon), as this process's PID namespace sees it: 0 when it is not
/// visible here (it lives in an ancestor or unrelated PID namespace). Returns 0, or a negative errno.
int csd_bus_peer_pid(csd_bus *bus, pid_t *pid, csd_error *error);

/// For a bus client: the PID of the connection owning the well-known `name` (GetConnectionUnixProcessID), as
/// the bus daemon's PID namespace sees it. Returns 0, or a negative errno (-EOPNOTSUPP on a direct connection,
/// which has no names).
int csd_bus_name_owner_pid(csd_bus *bus, const char *name, uint64_t timeout_usec, pid_t *pid, csd_error *error);

/// The manager's Version property (e.g. "252.39-1~deb12u2"): proof that systemd answers. Writes it to `version`
/// (`size` bytes). Returns 0, or a negative errno.
int csd_manager_version(csd_bus *bus, uint64_t timeout_usec, char *version, size_t size, csd_error *error);

/// Called once per unit csd_manager_list_units finds. `name` and `active_state` are BORROWED (valid until the
/// visitor returns); `context` is the one given to csd_manager_list_units.
typedef void (*csd_unit_visitor)(void *context, const char *name, const char *active_state);

/// The units the manager has loaded whose names match the shell-style `pattern` (ListUnitsByPatterns with no
/// state filter): calls `visit` for each with its name and ActiveState. Returns 0, or a negative errno (the
/// visitor may then have seen some units).
int csd_manager_list_units(csd_bus *bus, const char *pattern, uint64_t timeout_usec, csd_unit_visitor visit,
                           void *context, csd_error *error);

/// Creates the transient scope unit `name` (which must end in ".scope") holding process `pid`, the way
/// `systemd-run --scope` does: StartTransientUnit(name, "fail") with the properties Description, PIDs [pid] and
/// CollectMode "inactive-or-failed" (so systemd forgets the unit once it is stopped or its processes are gone),
/// then waits until the start job is finished. Returns 0 when the job ended "done"; otherwise a negative errno:
/// an existing unit of that name fails with error name "org.freedesktop.systemd1.UnitExists", and a job that
/// ended otherwise fails with -EIO and a message naming its result.
int csd_unit_start_scope(csd_bus *bus, const char *name, const char *description, pid_t pid, uint64_t timeout_usec,
                         csd_error *error);

/// Stops the unit `name` (StopUnit(name, "replace"), which kills its remaining processes the way its KillMode
/// says) and waits until the stop job is finished. A unit systemd does not know counts as stopped. Returns 0, or
/// a negative errno (-EIO when the job ended otherwise than "done").
int csd_unit_stop(csd_bus *bus, const char *name, uint64_t timeout_usec, csd_error *error);

/// Sends `signal` to every process of the unit `name` (KillUnit(name, "all", signal)); a unit systemd does not
/// know, or one without processes, is not an error. Returns 0, or a negative errno.
int csd_unit_kill(csd_bus *bus, const char *name, int signal, uint64_t timeout_usec, csd_error *error);

/// The ActiveState of unit `name` ("active", "activating", "deactivating", "inactive", "failed", ...): GetUnit,
/// then the Unit interface's ActiveState property of the object it names. Returns 1 with the state in `state`
/// (`size` bytes); 0 with `state` "" when systemd does not know the unit (it is not loaded); or a negative errno.
int csd_unit_active_state(csd_bus *bus, const char *name, uint64_t timeout_usec, char *state, size_t size,
                          csd_error *error);

#ifdef __cplusplus
}
#endif

#endif
