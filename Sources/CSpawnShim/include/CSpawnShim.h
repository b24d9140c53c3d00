// Starting a program whose child side must do work between fork and exec: join cgroups (so the
// program and everything it starts live outside the caller's cgroup) and, optionally, wait at a
// gate until the caller has placed it somewhere else (a systemd scope) before it execs.
//
// That work cannot be written in Swift: after fork in a multithreaded process the child may only
// make async-signal-safe calls, and Swift code allocates. So the child side is this C, which only
// makes system calls. Every symbol of ours starts with `cspawn_`.
//
// Ownership (who frees what):
//  - Every pointer in a cspawn_request is BORROWED for the duration of cspawn_start only.
//  - cspawn_start fills a cspawn_child whose descriptors the shim OWNS until cspawn_release (gated
//    children) or cspawn_start itself (others) closes them; the caller never closes them.
//  - The child process is the caller's: it must be waited for with waitpid, except where a
//    function below says the shim reaped it already.
#ifndef CSPAWNSHIM_H
#define CSPAWNSHIM_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Where a child's start failed, reported through cspawn_failure.stage.
enum {
    /// Creating the pipes or forking (the child never ran).
    CSPAWN_STAGE_FORK = 1,
    /// Writing itself into a cgroup.procs file (index names which one).
    CSPAWN_STAGE_CGROUP_JOIN = 2,
    /// Entering the cgroup namespace named by the request, after a join was refused (index names
    /// the refused file, move_error says why it was refused).
    CSPAWN_STAGE_CGROUP_NAMESPACE = 3,
    /// execve.
    CSPAWN_STAGE_EXEC = 4,
    /// The child ended without saying why (killed before it could report).
    CSPAWN_STAGE_VANISHED = 5,
};

/// What to start and how.
typedef struct cspawn_request {
    /// Absolute path of the program.
    const char *path;
    /// NULL-terminated argument vector, argv[0] included.
    char *const *argv;
    /// NULL-terminated environment (`NAME=value` entries): the child's whole environment.
    char *const *envp;
    /// Becomes the child's stdout and stderr; its stdin is /dev/null.
    int output_fd;
    /// `cgroup_count` paths of cgroup.procs files the child writes itself into, in order, before
    /// it execs. 0 and NULL: the child stays in the caller's cgroups.
    const char *const *cgroup_files;
    size_t cgroup_count;
    /// A cgroup namespace file (e.g. /proc/1/ns/cgroup) the child enters, retrying every join,
    /// when a join is refused (newer kernels refuse moves to cgroups outside the writer's
    /// namespace). NULL, or the namespace the child is in already: a refused join fails the start.
    const char *cgroup_namespace;
    /// 1: after joining, the child waits at a gate until cspawn_release; 0: it execs at once.
    int gated;
} cspawn_request;

/// A started child. `pid` is also its process group ID (the child calls setpgid(0, 0)).
typedef struct cspawn_child {
    pid_t pid;
    /// Write end of the gate, or -1 (not gated, or released).
    int gate_fd;
    /// Read end of the pipe the child reports on, or -1 once the report was collected.
    int report_fd;
} cspawn_child;

/// Why a start failed.
typedef struct cspawn_failure {
    /// A CSPAWN_STAGE_* value.
    int stage;
    /// The errno of the failed call.
    int error;
    /// For CSPAWN_STAGE_CGROUP_JOIN and _NAMESPACE: the index into cgroup_files.
    int index;
    /// For CSPAWN_STAGE_CGROUP_NAMESPACE: the errno of the refused move that made the child try.
    int move_error;
} cspawn_failure;

/// pipe2(fds, O_CLOEXEC): a pipe no other child inherits, even one forked by another thread
/// between the pipe's creation and a separate fcntl. Returns 0, or -1 with errno set.
int cspawn_pipe(int fds[2]);

/// Starts `request->path`. BLOCKS only until the child has exec'd (ungated) or is waiting at the
/// gate (gated), or has failed: microseconds, never on the program itself.
///
/// Returns 0 with `child` filled: an ungated child runs the program; a gated one waits for
/// cspawn_release. Returns -1 with `failure` filled when the child could not get that far; a
/// child that was forked has been reaped by then and `child->pid` is 0.
///
/// A child with no cgroups to join and no gate is started with posix_spawn (no fork: nothing to
/// do before exec). Otherwise it is forked; all signals are blocked in the calling thread around
/// the fork, and the child resets every signal's disposition to the default and clears its mask
/// before it execs, so a signal arriving in between never runs the caller's handlers in the
/// child. Either way the child starts in a process group of its own with an empty signal mask and
/// every signal at its default.
int cspawn_start(const cspawn_request *request, cspawn_child *child, cspawn_failure *failure);

/// Lets a gated child go on (`proceed` 1: it execs) or makes it exit without exec'ing (`proceed`
/// 0: it exits with status 127 and the shim reaps it). BLOCKS until the child exec'd or failed.
/// Returns 0 when the child exec'd (or was stopped as asked), -1 with `failure` filled when its
/// exec failed (the child was reaped; `child->pid` is 0). Closes the child's descriptors either way.
int cspawn_release(cspawn_child *child, int proceed, cspawn_failure *failure);

/// The pid of a child of this process that has ended and waits to be reaped, without reaping it
/// (waitid with WNOWAIT); 0 when there is none, -1 with errno set (ECHILD: no children at all).
pid_t cspawn_ended_child(void);

/// Installs a SIGCHLD handler (SA_RESTART, SA_NOCLDSTOP) that writes one byte to `fd` (which
/// should be the non-blocking write end of a pipe) and does nothing else. Returns 0, or -1 with
/// errno set.
int cspawn_notify_child_exits(int fd);

#ifdef __cplusplus
}
#endif

#endif
