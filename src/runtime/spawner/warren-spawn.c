/*
 * warren-spawn: a tiny process launcher for the process runtime.
 *
 * Node's child_process.spawn forks the whole Node process (libuv 1.46 uses fork()), which
 * costs more the more memory the orchestrator holds, and it runs on the event loop's
 * thread. This helper is small, so it starts jobs with vfork()+execve() at a fraction of
 * the cost, on the other core, while Node keeps scheduling. Node talks to it over
 * stdin/stdout.
 *
 * Request (stdin), one frame per job:
 *   u32 little-endian length, then NUL-terminated strings:
 *   id, cwd, stdout path, stderr path, argc (decimal), argv..., envc (decimal), env...
 * Replies (stdout), one line each:
 *   S <id> <pid>            started (the child is the leader of a new session/process group)
 *   F <id> <errno> <stage>  could not start (stage: open|chdir|exec|fork)
 *   X <pid> <wait-status>   a child ended (raw waitpid status)
 * The helper exits when stdin closes. It never kills anything: Node signals process
 * groups itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *inbuf;
static size_t inlen, incap;
static char outbuf[1 << 16];
static size_t outlen;

static void flush_out(void) {
  size_t off = 0;
  while (off < outlen) {
    ssize_t n = write(1, outbuf + off, outlen - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(3);
    }
    off += (size_t)n;
  }
  outlen = 0;
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
  if (outlen > sizeof(outbuf) - 512) flush_out();
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(outbuf + outlen, sizeof(outbuf) - outlen, fmt, ap);
  va_end(ap);
  if (n > 0) outlen += (size_t)n;
}

/* Shared with the vfork child (same memory until it execs or exits). */
static volatile int child_errno;
static volatile int child_stage;

static const char *stages[] = {"fork", "open", "chdir", "exec"};

/* execve with a PATH search that uses the job's own PATH. */
static void exec_path(char *const argv[], char *const envp[], const char *path_env) {
  const char *file = argv[0];
  if (strchr(file, '/')) {
    execve(file, argv, envp);
    return;
  }
  const char *p = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  char buf[4096];
  int saw_eacces = 0;
  while (*p) {
    const char *colon = strchr(p, ':');
    size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
    size_t flen = strlen(file);
    if (dlen + flen + 2 < sizeof(buf)) {
      if (dlen == 0) {
        memcpy(buf, file, flen + 1);
      } else {
        memcpy(buf, p, dlen);
        buf[dlen] = '/';
        memcpy(buf + dlen + 1, file, flen + 1);
      }
      execve(buf, argv, envp);
      if (errno == EACCES) saw_eacces = 1;
    }
    if (!colon) break;
    p = colon + 1;
  }
  errno = saw_eacces ? EACCES : ENOENT;
}

/* The vfork child: only async-signal-safe calls until execve; never returns. */
static void __attribute__((noreturn, noinline)) child_exec(const char *cwd, const char *out, const char *err, char **argv, char **envp,
                                                            const char *path_env) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  int ofd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int efd = strcmp(out, err) == 0 ? ofd : open(err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (ofd < 0 || efd < 0) {
    child_errno = errno;
    child_stage = 1;
    _exit(127);
  }
  int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
  dup2(nul, 0);
  dup2(ofd, 1);
  dup2(efd, 2);
  if (chdir(cwd) != 0) {
    child_errno = errno;
    child_stage = 2;
    _exit(127);
  }
  exec_path(argv, envp, path_env);
  child_errno = errno;
  child_stage = 3;
  _exit(127);
}

static void spawn_one(char *frame, size_t len) {
  char *fields[8];
  char *p = frame, *end = frame + len;
  for (int i = 0; i < 5; i++) {
    if (p >= end) return;
    fields[i] = p;
    p += strlen(p) + 1;
  }
  const char *id = fields[0], *cwd = fields[1], *out = fields[2], *err = fields[3];
  int argc = atoi(fields[4]);
  if (argc <= 0 || argc > 100000) return;
  char **argv = calloc((size_t)argc + 1, sizeof(char *));
  for (int i = 0; i < argc && p < end; i++) {
    argv[i] = p;
    p += strlen(p) + 1;
  }
  int envc = p < end ? atoi(p) : 0;
  p += strlen(p) + 1;
  char **volatile envp = calloc((size_t)envc + 1, sizeof(char *));
  const char *volatile path_env = NULL;
  for (int i = 0; i < envc && p < end; i++) {
    envp[i] = p;
    if (strncmp(p, "PATH=", 5) == 0) path_env = p + 5;
    p += strlen(p) + 1;
  }

  child_errno = 0;
  child_stage = 0;
  pid_t pid = vfork();
  if (pid == 0) child_exec(cwd, out, err, argv, envp, path_env);
  if (pid < 0) {
    emit("F %s %d fork\n", id, errno);
  } else if (child_stage != 0) {
    int st;
    waitpid(pid, &st, 0);
    emit("F %s %d %s\n", id, child_errno, stages[child_stage]);
  } else {
    emit("S %s %d\n", id, (int)pid);
  }
  free(argv);
  free(envp);
}

static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) emit("X %d %d\n", (int)pid, st);
}

int main(void) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return 2;
  signal(SIGPIPE, SIG_IGN);
  incap = 1 << 20;
  inbuf = malloc(incap);
  for (;;) {
    struct pollfd fds[2] = {{sfd, POLLIN, 0}, {0, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 2;
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (incap - inlen < 65536) {
        incap *= 2;
        inbuf = realloc(inbuf, incap);
        if (!inbuf) return 2;
      }
      ssize_t r = read(0, inbuf + inlen, incap - inlen);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        /* The orchestrator is gone: nobody to report to. Jobs run on in their own sessions. */
        reap();
        flush_out();
        return 0;
      }
      if (r > 0) {
        inlen += (size_t)r;
        size_t off = 0;
        while (inlen - off >= 4) {
          uint32_t flen;
          memcpy(&flen, inbuf + off, 4);
          if (inlen - off - 4 < flen) break;
          spawn_one(inbuf + off + 4, flen);
          off += 4 + flen;
        }
        memmove(inbuf, inbuf + off, inlen - off);
        inlen -= off;
      }
    }
    reap();
    flush_out();
  }
}
