// The fork, the child's work before exec, and the parent's reading of the child's report.
//
// The child reports on a close-on-exec pipe: a record when it waits at the gate, a record when a
// step fails (then it exits 127), and nothing when exec succeeds — the parent then reads EOF,
// because exec closed the pipe. That is how the parent tells "it runs the program" from "it did
// not get there" without waiting for the program.
#define _GNU_SOURCE
#include "CSpawnShim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// One report record. stage 0 means "waiting at the gate".
typedef struct cspawn_record {
    int32_t stage;
    int32_t error;
    int32_t index;
    int32_t move_error;
} cspawn_record;

// ---------------------------------------------------------------------------------------- child
// Everything from here to cspawn_child_main's end runs in the forked child: system calls only.

static void cspawn_child_report(int report_fd, int stage, int error, int index, int move_error) {
    cspawn_record record = {stage, error, index, move_error};
    const char *bytes = (const char *)&record;
    size_t left = sizeof(record);
    while (left > 0) {
        ssize_t written = write(report_fd, bytes, left);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return;
        bytes += written;
        left -= (size_t)written;
    }
}

static _Noreturn void cspawn_child_fail(int report_fd, int stage, int error, int index, int move_error) {
    cspawn_child_report(report_fd, stage, error, index, move_error);
    _exit(127);
}

// Writes "0" (this process) into each cgroup.procs file. Returns -1 with *failed set to the
// index that failed and errno kept, or 0.
static int cspawn_child_join(const cspawn_request *request, int *failed) {
    for (size_t index = 0; index < request->cgroup_count; index++) {
        int fd = open(request->cgroup_files[index], O_WRONLY | O_CLOEXEC);
        ssize_t written = -1;
        if (fd >= 0) {
            do {
                written = write(fd, "0", 1);
            } while (written < 0 && errno == EINTR);
            int saved = errno;
            close(fd);
            errno = saved;
        }
        if (written != 1) {
            *failed = (int)index;
            return -1;
        }
    }
    return 0;
}

static _Noreturn void cspawn_child_main(const cspawn_request *request, int report_fd, int gate_fd) {
    // Default dispositions for every signal the caller may handle or ignore: its handlers must
    // never run here (the Swift server's write to its signal pipe would reach the parent), and a
    // mount helper must not inherit an ignored SIGPIPE or SIGTERM. Only then unblock.
    struct sigaction defaults;
    memset(&defaults, 0, sizeof(defaults));
    defaults.sa_handler = SIG_DFL;
    sigemptyset(&defaults.sa_mask);
    for (int number = 1; number < NSIG; number++) {
        if (number == SIGKILL || number == SIGSTOP) continue;
        (void)sigaction(number, &defaults, NULL);  // fails harmlessly for libc's reserved signals
    }
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    // Own process group, so a timeout can kill everything the program started.
    (void)setpgid(0, 0);

    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(request->output_fd, 1) < 0 ||
        dup2(request->output_fd, 2) < 0) {
        cspawn_child_fail(report_fd, CSPAWN_STAGE_EXEC, errno, 0, 0);
    }
    if (null_fd > 2) close(null_fd);

    if (request->cgroup_count > 0) {
        int failed = 0;
        if (cspawn_child_join(request, &failed) != 0) {
            int refused = errno;
            if (request->cgroup_namespace == NULL) {
                cspawn_child_fail(report_fd, CSPAWN_STAGE_CGROUP_JOIN, refused, failed, 0);
            }
            // The kernel checks a move against the writer's cgroup namespace, as it was when the
            // file was opened: enter the host's namespace and open every file again. This process
            // is single-threaded, so setns changes all of it. Already in that namespace, a retry
            // would only fail the same way.
            int namespace_fd = open(request->cgroup_namespace, O_RDONLY | O_CLOEXEC);
            if (namespace_fd < 0) {
                cspawn_child_fail(report_fd, CSPAWN_STAGE_CGROUP_NAMESPACE, errno, failed, refused);
            }
            struct stat target, own;
            if (fstat(namespace_fd, &target) == 0 && stat("/proc/self/ns/cgroup", &own) == 0 &&
                target.st_dev == own.st_dev && target.st_ino == own.st_ino) {
                cspawn_child_fail(report_fd, CSPAWN_STAGE_CGROUP_JOIN, refused, failed, 0);
            }
            if (setns(namespace_fd, CLONE_NEWCGROUP) != 0) {
                cspawn_child_fail(report_fd, CSPAWN_STAGE_CGROUP_NAMESPACE, errno, failed, refused);
            }
            close(namespace_fd);
            if (cspawn_child_join(request, &failed) != 0) {
                cspawn_child_fail(report_fd, CSPAWN_STAGE_CGROUP_JOIN, errno, failed, 0);
            }
        }
    }

    if (gate_fd >= 0) {
        cspawn_child_report(report_fd, 0, 0, 0, 0);
        char go = 0;
        ssize_t got;
        do {
            got = read(gate_fd, &go, 1);
        } while (got < 0 && errno == EINTR);
        // EOF or an error: the parent decided against exec'ing (or died). Leave quietly.
        if (got != 1) _exit(127);
    }

    execve(request->path, request->argv, request->envp);
    cspawn_child_fail(report_fd, CSPAWN_STAGE_EXEC, errno, 0, 0);
}

// --------------------------------------------------------------------------------------- parent

// Reads one record. Returns 1 with *record filled, 0 on EOF (the child exec'd or died silently).
static int cspawn_read_record(int fd, cspawn_record *record) {
    char *bytes = (char *)record;
    size_t have = 0;
    while (have < sizeof(*record)) {
        ssize_t got = read(fd, bytes + have, sizeof(*record) - have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return have == 0 ? 0 : -1;
        have += (size_t)got;
    }
    return 1;
}

static void cspawn_reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

static void cspawn_close(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

// A failure record (or a silent death) ends the child: reap it and forget it.
static int cspawn_failed(cspawn_child *child, cspawn_failure *failure, const cspawn_record *record) {
    if (record != NULL) {
        failure->stage = record->stage;
        failure->error = record->error;
        failure->index = record->index;
        failure->move_error = record->move_error;
    } else {
        failure->stage = CSPAWN_STAGE_VANISHED;
        failure->error = 0;
        failure->index = 0;
    }
    cspawn_close(&child->gate_fd);
    cspawn_close(&child->report_fd);
    cspawn_reap(child->pid);
    child->pid = 0;
    return -1;
}

int cspawn_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

// A child with nothing to do before exec: posix_spawn, which glibc implements with a vfork-like
// clone that copies no page tables, so the many bind mounts and unmounts cost no fork.
static int cspawn_start_plain(const cspawn_request *request, cspawn_child *child, cspawn_failure *failure) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, request->output_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, request->output_fd, 2);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // The same start as a forked child's: own process group, empty mask, every signal default.
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    pid_t pid = 0;
    int status = posix_spawn(&pid, request->path, &actions, &attributes, request->argv, request->envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    if (status != 0) {
        failure->stage = CSPAWN_STAGE_EXEC;
        failure->error = status;
        return -1;
    }
    child->pid = pid;
    return 0;
}

int cspawn_start(const cspawn_request *request, cspawn_child *child, cspawn_failure *failure) {
    memset(child, 0, sizeof(*child));
    memset(failure, 0, sizeof(*failure));
    child->gate_fd = -1;
    child->report_fd = -1;
    if (request->cgroup_count == 0 && !request->gated) return cspawn_start_plain(request, child, failure);

    int report[2] = {-1, -1};
    int gate[2] = {-1, -1};
    if (pipe2(report, O_CLOEXEC) != 0 || (request->gated && pipe2(gate, O_CLOEXEC) != 0)) {
        failure->stage = CSPAWN_STAGE_FORK;
        failure->error = errno;
        cspawn_close(&report[0]);
        cspawn_close(&report[1]);
        return -1;
    }

    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    // _Fork, not fork: no atfork handlers and no libc locks taken for a child that only makes
    // system calls.
    pid_t pid = _Fork();
    if (pid == 0) {
        close(report[0]);
        if (gate[1] >= 0) close(gate[1]);
        cspawn_child_main(request, report[1], gate[0]);
    }
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(report[1]);
    cspawn_close(&gate[0]);
    if (pid < 0) {
        cspawn_close(&report[0]);
        cspawn_close(&gate[1]);
        failure->stage = CSPAWN_STAGE_FORK;
        failure->error = fork_error;
        return -1;
    }
    child->pid = pid;
    child->report_fd = report[0];
    child->gate_fd = gate[1];

    cspawn_record record;
    int got = cspawn_read_record(child->report_fd, &record);
    if (request->gated) {
        // The child's first word is "at the gate" unless a step before it failed.
        if (got == 1 && record.stage == 0) return 0;
        return cspawn_failed(child, failure, got == 1 ? &record : NULL);
    }
    if (got == 0) {
        cspawn_close(&child->report_fd);
        return 0;
    }
    return cspawn_failed(child, failure, got == 1 ? &record : NULL);
}

int cspawn_release(cspawn_child *child, int proceed, cspawn_failure *failure) {
    memset(failure, 0, sizeof(*failure));
    if (child->gate_fd < 0) return 0;
    if (!proceed) {
        cspawn_close(&child->gate_fd);
        cspawn_close(&child->report_fd);
        cspawn_reap(child->pid);
        child->pid = 0;
        return 0;
    }
    char go = 1;
    ssize_t written;
    do {
        written = write(child->gate_fd, &go, 1);
    } while (written < 0 && errno == EINTR);
    cspawn_close(&child->gate_fd);
    cspawn_record record;
    int got = cspawn_read_record(child->report_fd, &record);
    if (got == 0) {
        cspawn_close(&child->report_fd);
        return 0;
    }
    return cspawn_failed(child, failure, got == 1 ? &record : NULL);
}
