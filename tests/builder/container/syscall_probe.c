/* Makes the system calls named on its command line and prints NAME=OK or NAME=<errno name> for each,
   so a test sees what a seccomp filter answers. Built static by the test, run inside a container. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

struct clone3_args { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

static long forked(long pid) {
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid < 0 ? -1 : 0;
}

static long call(const char *name) {
    if (!strcmp(name, "getppid")) return syscall(SYS_getppid);
    if (!strcmp(name, "getuid")) return syscall(SYS_getuid);
    if (!strcmp(name, "getgid")) return syscall(SYS_getgid);
    if (!strcmp(name, "fork")) return forked(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
    if (!strcmp(name, "clone3")) {
        struct clone3_args args = {.exit_signal = SIGCHLD};
        return forked(syscall(SYS_clone3, &args, sizeof args));
    }
    if (!strcmp(name, "clone_newuts")) return forked(syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0));
    if (!strcmp(name, "unshare_user")) return syscall(SYS_unshare, CLONE_NEWUSER);
    if (!strcmp(name, "mount")) return mount("none", "/tmp", "tmpfs", 0, NULL);
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "probe", "x", 1, -3);
    if (!strcmp(name, "io_uring_setup")) return syscall(SYS_io_uring_setup, 1, NULL);
    if (!strcmp(name, "swapon")) return syscall(SYS_swapon, "/nonexistent", 0);
    if (!strcmp(name, "get_mempolicy")) return syscall(SYS_get_mempolicy, NULL, NULL, 0, NULL, 0);
    if (!strcmp(name, "kcmp")) { pid_t p = getpid(); return syscall(SYS_kcmp, p, p, 0 /* KCMP_FILE */, 0, 0); }
    if (!strcmp(name, "personality_linux")) return syscall(SYS_personality, 0xffffffff) < 0 ? -1 : 0;
    if (!strcmp(name, "personality_bsd")) {
        long old = syscall(SYS_personality, 0x0006 /* PER_BSD */);
        if (old >= 0) syscall(SYS_personality, old);
        return old < 0 ? -1 : 0;
    }
    if (!strcmp(name, "socket_inet")) return syscall(SYS_socket, 2 /* AF_INET */, 2 /* DGRAM */, 0);
    if (!strcmp(name, "socket_vsock")) return syscall(SYS_socket, 40 /* AF_VSOCK */, 1, 0);
    errno = EINVAL;
    fprintf(stderr, "probe: unknown call %s\n", name);
    return -1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long rc = call(argv[i]);
        printf("%s=%s\n", argv[i], rc < 0 ? strerrorname_np(errno) : "OK");
    }
    return 0;
}
