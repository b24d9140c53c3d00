// A connection to systemd's manager: open (direct or through a bus daemon), liveness, the peer's PID, close.
#define _GNU_SOURCE // struct ucred for SO_PEERCRED
#include "CSystemdShim.h"
#include "shim_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

// "unix:path=" plus the path, %-escaped where the D-Bus address syntax needs it (sd-bus unescapes it): every byte
// outside [-0-9A-Za-z_/.*]. Returns 0, or -ENAMETOOLONG when it does not fit `size`.
static int csd_bus_address(const char *path, char *address, size_t size) {
    static const char prefix[] = "unix:path=";
    static const char hex[] = "0123456789abcdef";
    size_t length = sizeof(prefix) - 1;
    if (size <= length) return -ENAMETOOLONG;
    memcpy(address, prefix, length);
    for (const unsigned char *byte = (const unsigned char *)path; *byte != 0; byte++) {
        int plain = (*byte >= '0' && *byte <= '9') || (*byte >= 'a' && *byte <= 'z') ||
                    (*byte >= 'A' && *byte <= 'Z') || strchr("-_/.*", *byte) != NULL;
        if (length + (plain ? 1 : 3) >= size) return -ENAMETOOLONG;
        if (plain) {
            address[length++] = (char)*byte;
        } else {
            address[length++] = '%';
            address[length++] = hex[*byte >> 4];
            address[length++] = hex[*byte & 15];
        }
    }
    address[length] = 0;
    return 0;
}

int csd_bus_open(const char *socket_path, int bus_client, uint64_t timeout_usec, csd_bus **bus, csd_error *error) {
    *bus = NULL;
    uint64_t deadline = csd_deadline(timeout_usec);
    const char *library_message = NULL;
    if (csd_library_init(&library_message) != 0) {
        // The loader's sentence already says what to install; -ELIBACC only classifies it.
        error->code = -ELIBACC;
        error->name[0] = 0;
        snprintf(error->message, sizeof(error->message), "%s", library_message);
        return -ELIBACC;
    }
    char address[4200];
    int r = csd_bus_address(socket_path, address, sizeof(address));
    if (r < 0) return csd_error_set(error, r, NULL, "connecting to systemd at %s", socket_path);

    csd_bus *connection = calloc(1, sizeof(*connection));
    if (connection == NULL) return csd_error_set(error, -ENOMEM, NULL, "connecting to systemd at %s", socket_path);
    connection->bus_client = bus_client != 0;
    r = csd_libsystemd.bus_new(&connection->bus);
    if (r < 0) {
        free(connection);
        return csd_error_set(error, r, NULL, "connecting to systemd at %s", socket_path);
    }
    r = csd_libsystemd.bus_set_address(connection->bus, address);
    // A bus client says Hello and gets a unique name; a direct peer of systemd must not (systemd is no bus
    // daemon and would not answer it).
    if (r >= 0) r = csd_libsystemd.bus_set_bus_client(connection->bus, connection->bus_client);
    // Connects the socket (a missing or dead socket fails right here) and starts authenticating.
    if (r >= 0) r = csd_libsystemd.bus_start(connection->bus);
    if (r < 0) {
        csd_bus_close(connection);
        return csd_error_set(error, r, NULL, "connecting to systemd at %s", socket_path);
    }
    // Authentication (and Hello) complete asynchronously; wait for them under our deadline rather than let the
    // first call do it under sd-bus's own 25 s authentication timeout. Then a broken peer is found here, once.
    for (;;) {
        r = csd_libsystemd.bus_is_ready(connection->bus);
        if (r > 0) break;
        if (r == 0) r = csd_libsystemd.bus_process(connection->bus, NULL);
        if (r > 0) continue;
        if (r == 0) {
            uint64_t remaining = csd_remaining(deadline);
            if (remaining == 0) {
                csd_bus_close(connection);
                return csd_error_plain(error, -ETIMEDOUT,
                                       "connecting to systemd at %s: it did not complete the handshake in time",
                                       socket_path);
            }
            r = csd_libsystemd.bus_wait(connection->bus, remaining);
        }
        if (r < 0) {
            csd_bus_close(connection);
            return csd_error_set(error, r, NULL, "connecting to systemd at %s", socket_path);
        }
    }
    *bus = connection;
    return 0;
}

void csd_bus_close(csd_bus *bus) {
    if (bus == NULL) return;
    // Close, not flush: every call of ours waited for its reply, so nothing worth waiting for is queued.
    if (bus->bus != NULL) csd_libsystemd.bus_close_unref(bus->bus);
    free(bus);
}

int csd_bus_is_open(csd_bus *bus) { return csd_libsystemd.bus_is_open(bus->bus) > 0; }

int csd_bus_peer_pid(csd_bus *bus, pid_t *pid, csd_error *error) {
    *pid = 0;
    int fd = csd_libsystemd.bus_get_fd(bus->bus);
    if (fd < 0) return csd_error_set(error, fd, NULL, "finding the socket of the connection to systemd");
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    // The PID is that of the process that called listen() on the socket (for a socket-activated bus daemon that
    // is systemd itself). The kernel translates it into the caller's PID namespace at this call and gives 0 when
    // the peer is not visible there; whether the namespaces are the same is the caller's next question.
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        return csd_error_set(error, -errno, NULL, "asking the kernel who is at the other end of the connection");
    }
    *pid = credentials.pid;
    return 0;
}
