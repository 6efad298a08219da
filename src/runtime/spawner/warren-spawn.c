/*
 * warren-spawn: a tiny process launcher for the process runtime.
 *
 * Node's child_process.spawn forks the whole Node process (libuv 1.46 uses fork()), which
 * costs more the more memory the orchestrator holds, and it runs on the event loop's
 * thread. This helper is small, so it forks jobs at a fraction of the cost, on the other
 * core, while Node keeps scheduling. Node talks to it over stdin/stdout.
 *
 * Request (stdin), one frame per message, everything length-prefixed (a NUL or newline
 * inside a value cannot shift the framing):
 *   u32le frame length, u8 op, then fields; a string is u32le length + bytes, a number u32le.
 *   'L' launch: str id, str cwd, str stdout, str stderr, u32 flags (1 = hold before exec),
 *       u32 argc, argc x str, u32 envc, envc x str ("K=V"), u32 ncg, ncg x str (cgroup dirs
 *       the child joins before anything else, by writing its pid to DIR/cgroup.procs),
 *       then when flags bit 2 is set: u32 uid, u32 gid, u32 ngroups, ngroups x u32 (the
 *       child opens its log files as the launcher's user, then takes these credentials —
 *       setgroups, setgid, setuid — before chdir and exec, as Slurm's slurmstepd does)
 *   'G' go:    str id   (a held child execs its command now)
 *   'A' abort: str id   (a held child exits 127 without exec'ing)
 * Replies (stdout), one line each (ids are decimal numbers chosen by Node):
 *   S <id> <pid> <created>  started: the child is the leader of a new session, in its cgroups,
 *                           log files open, in its cwd; held if asked. created: bit 1 = the
 *                           stdout file was created now, bit 2 = the stderr file
 *   F <id> <errno> <stage>  could not start (stage: fork|open|chdir|exec|cgroup|request); no X follows
 *   E <id> <errno> exec     a held child, released, could not exec (its X follows)
 *   X <pid> <wait-status> <cpu-us>  a child ended (raw wait status; user+system CPU time of
 *                           it and the descendants it waited for, from wait4)
 * The helper is a child subreaper: orphans of jobs are reparented to it and reaped.
 * When stdin closes or SIGTERM arrives (its owner ended), it kills every job it started
 * (process group and every process in the job's cgroups), reaps, removes those cgroups
 * and exits.
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
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

enum { ST_FORK, ST_OPEN, ST_CHDIR, ST_EXEC, ST_CGROUP, ST_SETUID };
static const char *stages[] = {"fork", "open", "chdir", "exec", "cgroup", "setuid"};

/* A job this launcher started and still tracks (until its leader is reaped). */
struct job {
  unsigned long id;
  pid_t pid;
  int gofd;     /* held: write end of the go pipe, else -1 */
  int statusfd; /* held: read end of the status pipe, else -1 */
  char **cgs;   /* cgroup dirs (owned copies) */
  int ncg;
  struct job *next;
};
static struct job *jobs;

static struct job *find_job(unsigned long id) {
  for (struct job *j = jobs; j; j = j->next)
    if (j->id == id) return j;
  return NULL;
}

static void drop_job(struct job *dead) {
  for (struct job **pp = &jobs; *pp; pp = &(*pp)->next) {
    if (*pp == dead) {
      *pp = dead->next;
      if (dead->gofd >= 0) close(dead->gofd);
      if (dead->statusfd >= 0) close(dead->statusfd);
      for (int i = 0; i < dead->ncg; i++) free(dead->cgs[i]);
      free(dead->cgs);
      free(dead);
      return;
    }
  }
}

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

static void write_all(int fd, const void *b, size_t n) {
  const char *p = b;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* The child reports a failure on the status pipe as 'F', stage, errno, then exits 127. */
static void __attribute__((noreturn)) child_fail(int statusfd, int stage) {
  int rec[2] = {stage, errno};
  write_all(statusfd, "F", 1);
  write_all(statusfd, rec, sizeof rec);
  _exit(127);
}

/* Open a log file; *created is set when this call made it. */
static int open_log(const char *path, int *created) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    *created = 1;
    return fd;
  }
  if (errno != EEXIST) return -1;
  *created = 0;
  return open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
}

/* The forked child; never returns. */
struct creds {
  int set;
  uid_t uid;
  gid_t gid;
  size_t ngroups;
  gid_t groups[256];
};

static void __attribute__((noreturn)) child_main(const char *cwd, const char *out, const char *err, char **argv, char **envp,
                                                 const char *path_env, char **cgs, int ncg, int hold, int gofd, int statusfd,
                                                 const struct creds *cr) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();
  char pidbuf[24];
  int plen = snprintf(pidbuf, sizeof pidbuf, "%d\n", (int)getpid());
  for (int i = 0; i < ncg; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", cgs[i]);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) child_fail(statusfd, ST_CGROUP);
    if (write(fd, pidbuf, (size_t)plen) != plen) child_fail(statusfd, ST_CGROUP);
    close(fd);
  }
  int cout = 0, cerr = 0;
  int ofd = open_log(out, &cout);
  if (ofd < 0) child_fail(statusfd, ST_OPEN);
  int efd = ofd;
  if (strcmp(out, err) != 0) {
    efd = open_log(err, &cerr);
    if (efd < 0) child_fail(statusfd, ST_OPEN);
  }
  int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (nul >= 0) dup2(nul, 0);
  dup2(ofd, 1);
  dup2(efd, 2);
  if (cr->set) {
    /* The job's own identity: groups first, then gid, then uid (after which none can change). */
    if (setgroups(cr->ngroups, cr->groups) != 0 || setgid(cr->gid) != 0 || setuid(cr->uid) != 0) child_fail(statusfd, ST_SETUID);
    if (cr->uid != 0 && setuid(0) == 0) child_fail(statusfd, ST_SETUID); /* dropping must be irreversible */
  }
  if (chdir(cwd) != 0) child_fail(statusfd, ST_CHDIR);
  char ready[2] = {'R', (char)(cout | (cerr << 1))};
  write_all(statusfd, ready, 2);
  if (hold) {
    char go;
    ssize_t r;
    do r = read(gofd, &go, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1) _exit(127); /* aborted (or the launcher died): never run the command */
  }
  exec_path(argv, envp, path_env);
  child_fail(statusfd, ST_EXEC);
}

/* Read the child's status record: 'R'+created (ready), 'F'+stage+errno (failed), or EOF (exec'd). */
static int read_status(int fd, int *stage, int *err, int *created) {
  char c;
  ssize_t r;
  do r = read(fd, &c, 1);
  while (r < 0 && errno == EINTR);
  if (r <= 0) return 0; /* EOF: exec succeeded (the pipe is close-on-exec) */
  if (c == 'R') {
    char m = 0;
    do r = read(fd, &m, 1);
    while (r < 0 && errno == EINTR);
    *created = m;
    return 'R';
  }
  int rec[2] = {0, 0};
  size_t got = 0;
  while (got < sizeof rec) {
    r = read(fd, (char *)rec + got, sizeof rec - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  *stage = rec[0];
  *err = rec[1];
  return 'F';
}

/* A cursor over one frame's fields. */
struct cur {
  const char *p, *end;
  int bad;
};

static uint32_t get_u32(struct cur *c) {
  uint32_t v = 0;
  if (c->end - c->p < 4) {
    c->bad = 1;
    return 0;
  }
  memcpy(&v, c->p, 4);
  c->p += 4;
  return v;
}

/* A NUL-terminated copy of the next string field (malloc'd; NULL when malformed or holding a NUL). */
static char *get_str(struct cur *c) {
  uint32_t n = get_u32(c);
  if (c->bad || (size_t)(c->end - c->p) < n || memchr(c->p, 0, n)) {
    c->bad = 1;
    return NULL;
  }
  char *s = malloc((size_t)n + 1);
  if (!s) {
    c->bad = 1;
    return NULL;
  }
  memcpy(s, c->p, n);
  s[n] = 0;
  c->p += n;
  return s;
}

static void free_strs(char **v, int n) {
  if (!v) return;
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

static char **get_strs(struct cur *c, int *count) {
  uint32_t n = get_u32(c);
  if (c->bad || n > 1000000 || n > (size_t)(c->end - c->p) / 4) {
    c->bad = 1;
    *count = 0;
    return NULL;
  }
  char **v = calloc((size_t)n + 1, sizeof(char *));
  if (!v) {
    c->bad = 1;
    *count = 0;
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    v[i] = get_str(c);
    if (c->bad) {
      free_strs(v, (int)i);
      *count = 0;
      return NULL;
    }
  }
  *count = (int)n;
  return v;
}

static void launch(struct cur *c) {
  char *id = get_str(c), *cwd = get_str(c), *out = get_str(c), *err = get_str(c);
  uint32_t flags = get_u32(c);
  int argc = 0, envc = 0, ncg = 0;
  char **argv = c->bad ? NULL : get_strs(c, &argc);
  char **envp = c->bad ? NULL : get_strs(c, &envc);
  char **cgs = c->bad ? NULL : get_strs(c, &ncg);
  static struct creds cr;
  memset(&cr, 0, sizeof cr);
  if (!c->bad && (flags & 2)) {
    cr.set = 1;
    cr.uid = (uid_t)get_u32(c);
    cr.gid = (gid_t)get_u32(c);
    uint32_t ng = get_u32(c);
    if (ng > 256) c->bad = 1;
    for (uint32_t i = 0; !c->bad && i < ng; i++) cr.groups[i] = (gid_t)get_u32(c);
    cr.ngroups = ng;
  }
  unsigned long nid = id ? strtoul(id, NULL, 10) : 0;
  if (c->bad || argc < 1) {
    emit("F %lu %d request\n", nid, EINVAL);
    goto out;
  }
  const char *path_env = NULL;
  for (int i = 0; i < envc; i++)
    if (strncmp(envp[i], "PATH=", 5) == 0) path_env = envp[i] + 5;
  int hold = (flags & 1) != 0;
  int gopipe[2] = {-1, -1}, stpipe[2];
  if (pipe2(stpipe, O_CLOEXEC) != 0 || (hold && pipe2(gopipe, O_CLOEXEC) != 0)) {
    emit("F %lu %d fork\n", nid, errno);
    goto out;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(stpipe[0]);
    if (hold) close(gopipe[1]);
    child_main(cwd, out, err, argv, envp, path_env, cgs, ncg, hold, gopipe[0], stpipe[1], &cr);
  }
  int fork_errno = errno;
  close(stpipe[1]);
  if (hold) close(gopipe[0]);
  if (pid < 0) {
    close(stpipe[0]);
    if (hold) close(gopipe[1]);
    emit("F %lu %d fork\n", nid, fork_errno);
    goto out;
  }
  int stage = 0, e = 0, created = 0;
  int st = read_status(stpipe[0], &stage, &e, &created);
  if (st == 'F') {
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    close(stpipe[0]);
    if (hold) close(gopipe[1]);
    emit("F %lu %d %s\n", nid, e, stage >= 0 && stage <= ST_SETUID ? stages[stage] : "exec");
    goto out;
  }
  struct job *j = calloc(1, sizeof *j);
  j->id = nid;
  j->pid = pid;
  j->gofd = hold ? gopipe[1] : -1;
  j->statusfd = -1;
  j->cgs = cgs;
  j->ncg = ncg;
  cgs = NULL;
  if (hold) {
    j->statusfd = stpipe[0];
  } else {
    /* Not held: the child goes straight on to exec; wait for the verdict. */
    st = read_status(stpipe[0], &stage, &e, &created);
    close(stpipe[0]);
    if (st == 'F') {
      int ws;
      while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
      }
      j->pid = -1;
      drop_job(j);
      emit("F %lu %d %s\n", nid, e, stages[ST_EXEC]);
      goto out;
    }
  }
  j->next = jobs;
  jobs = j;
  emit("S %lu %d %d\n", nid, (int)pid, created);
out:
  free(id);
  free(cwd);
  free(out);
  free(err);
  free_strs(argv, argc);
  free_strs(envp, envc);
  free_strs(cgs, ncg);
}

static void release(struct cur *c, int go) {
  char *id = get_str(c);
  if (!id) return;
  struct job *j = find_job(strtoul(id, NULL, 10));
  free(id);
  if (!j || j->gofd < 0) return;
  if (go) write_all(j->gofd, "g", 1);
  close(j->gofd);
  j->gofd = -1;
  if (go && j->statusfd >= 0) {
    int stage = 0, e = 0, created = 0;
    if (read_status(j->statusfd, &stage, &e, &created) == 'F') emit("E %lu %d exec\n", j->id, e);
  }
  if (j->statusfd >= 0) close(j->statusfd);
  j->statusfd = -1;
}

static void reap(void) {
  int st;
  pid_t pid;
  struct rusage ru;
  while ((pid = wait4(-1, &st, WNOHANG, &ru)) > 0) {
    for (struct job *j = jobs; j; j = j->next) {
      if (j->pid == pid) {
        drop_job(j);
        break;
      }
    }
    long long cpu_us = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
    emit("X %d %d %lld\n", (int)pid, st, cpu_us);
  }
}

/* SIGKILL every process listed in DIR/cgroup.procs; returns how many were listed. */
static int kill_cgroup(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cgroup.kill", dir);
  int kfd = open(path, O_WRONLY | O_CLOEXEC);
  if (kfd >= 0) {
    write_all(kfd, "1", 1);
    close(kfd);
  }
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  int n = 0, p;
  while (fscanf(f, "%d", &p) == 1) {
    if (p > 1 && p != getpid()) kill(p, SIGKILL);
    n++;
  }
  fclose(f);
  return n;
}

/* The owner is gone: nobody supervises the jobs any more, so none may run on. */
static void __attribute__((noreturn)) shutdown_all(void) {
  /* The jobs' cgroups outlive the job records (dropped when a leader is reaped). */
  int ncg = 0;
  for (struct job *j = jobs; j; j = j->next) ncg += j->ncg;
  char **cgs = calloc((size_t)ncg + 1, sizeof(char *));
  int k = 0;
  for (struct job *j = jobs; j && cgs; j = j->next)
    for (int i = 0; i < j->ncg; i++) cgs[k++] = strdup(j->cgs[i]);
  for (int round = 0; round < 100; round++) {
    int left = 0;
    for (struct job *j = jobs; j; j = j->next) {
      kill(-j->pid, SIGKILL);
      kill(j->pid, SIGKILL);
    }
    for (int i = 0; i < k; i++)
      if (cgs[i]) left += kill_cgroup(cgs[i]);
    usleep(round ? 20000 : 1000);
    reap();
    if (!left && !jobs) break;
  }
  /* Orphans reparented to us (this is a subreaper) are reaped before exiting. */
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  for (int round = 0; round < 50; round++) {
    int busy = 0;
    for (int i = 0; i < k; i++)
      if (cgs[i] && rmdir(cgs[i]) != 0 && errno != ENOENT) busy = 1;
    if (!busy) break;
    usleep(20000);
  }
  flush_out();
  _exit(0);
}

int main(void) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return 2;
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) shutdown_all();
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
        if (si.ssi_signo != SIGCHLD) shutdown_all();
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(0, inbuf + inlen, incap - inlen);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) shutdown_all();
      if (r > 0) {
        inlen += (size_t)r;
        size_t off = 0;
        while (inlen - off >= 4) {
          uint32_t flen;
          memcpy(&flen, inbuf + off, 4);
          if (flen > (64u << 20)) shutdown_all(); /* not our protocol */
          if (inlen - off - 4 < flen) {
            if (4 + (size_t)flen > incap) {
              incap = 4 + (size_t)flen;
              inbuf = realloc(inbuf, incap);
              if (!inbuf) return 2;
            }
            break;
          }
          struct cur c = {inbuf + off + 5, inbuf + off + 4 + flen, flen < 1};
          char op = flen ? inbuf[off + 4] : 0;
          if (op == 'L') launch(&c);
          else if (op == 'G') release(&c, 1);
          else if (op == 'A') release(&c, 0);
          off += 4 + flen;
        }
        memmove(inbuf, inbuf + off, inlen - off);
        inlen -= off;
        if (incap - inlen < 65536) {
          incap *= 2;
          inbuf = realloc(inbuf, incap);
          if (!inbuf) return 2;
        }
      }
    }
    reap();
    flush_out();
  }
}
