// What an init process needs to reap orphans: a look at ended children that reaps nothing, and a
// SIGCHLD that wakes a thread through a pipe (the one async-signal-safe thing a handler can do).
#define _GNU_SOURCE
#include "CSpawnShim.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t cspawn_ended_child(void) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int status;
    do {
        status = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    } while (status != 0 && errno == EINTR);
    if (status != 0) return -1;
    return info.si_pid;  // 0 when no child has ended (WNOHANG leaves si_pid zeroed)
}

static atomic_int cspawn_child_exit_fd = -1;

static void cspawn_on_child_exit(int number) {
    (void)number;
    int saved = errno;  // a handler must not change errno under the interrupted code
    char byte = 1;
    ssize_t ignored = write(atomic_load(&cspawn_child_exit_fd), &byte, 1);
    (void)ignored;
    errno = saved;
}

int cspawn_notify_child_exits(int fd) {
    atomic_store(&cspawn_child_exit_fd, fd);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = cspawn_on_child_exit;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    return sigaction(SIGCHLD, &action, NULL);
}
