/*
 * warren-userid: the first process of an ad-hoc container of a user who is not root
 * (src/runtime/container/adhoc.ts). Static, so it runs in any image.
 *
 * A rootless runc maps the caller to root in the container's user namespace (it must own
 * the container's stdio). Apptainer's users expect their own uid and gid inside, so this
 * helper makes one more user namespace in which the container's root (the caller outside)
 * is seen as UID:GID, then execs the command. The process keeps no capabilities: a
 * non-zero uid loses them at exec.
 *
 *   warren-userid UID GID CMD [ARGS...]
 *   warren-userid UID GID --warren-instance [CMD [ARGS...]]
 *
 * The second form is pid 1 of an instance (its own PID namespace): it runs CMD (the
 * %startscript) as its child, reaps every process of the instance, and lives until it is
 * told to stop (SIGTERM: passed to every process of the instance, then it exits), as
 * Apptainer's instances do when their startscript returns.
 *
 * Writing a uid_map that maps uid 0 of the parent namespace needs CAP_SETFCAP there
 * (Linux >= 5.12), which the ad-hoc spec grants to this process only (it is dropped with
 * every other capability at exec). Exit status 127 when CMD cannot be run, 126 when it is
 * not executable (as a shell does); 125 when the namespace cannot be made.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  int saved = errno;
  close(fd);
  errno = saved;
  return w == (ssize_t)n ? 0 : -1;
}

/* One more user namespace in which the container's root (the caller outside) is UID:GID. */
static int become(unsigned long uid, unsigned long gid) {
  char map[64];
  if (uid == 0 && gid == 0) return 0;
  if (unshare(CLONE_NEWUSER) != 0) {
    fprintf(stderr, "warren-userid: cannot create a user namespace: %s\n", strerror(errno));
    return 125;
  }
  if (write_file("/proc/self/setgroups", "deny") != 0 && errno != ENOENT) {
    fprintf(stderr, "warren-userid: cannot write /proc/self/setgroups: %s\n", strerror(errno));
    return 125;
  }
  snprintf(map, sizeof map, "%lu 0 1\n", uid);
  if (write_file("/proc/self/uid_map", map) != 0) {
    fprintf(stderr, "warren-userid: cannot map uid %lu: %s\n", uid, strerror(errno));
    return 125;
  }
  snprintf(map, sizeof map, "%lu 0 1\n", gid);
  if (write_file("/proc/self/gid_map", map) != 0) {
    fprintf(stderr, "warren-userid: cannot map gid %lu: %s\n", gid, strerror(errno));
    return 125;
  }
  return 0;
}

static volatile sig_atomic_t stopping = 0;

static void on_term(int sig) {
  (void)sig;
  stopping = 1;
}

static int instance_init(unsigned long uid, unsigned long gid, int argc, char **argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  if (argc > 0) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "warren: cannot start %s: %s\n", argv[0], strerror(errno));
      return 125;
    }
    if (pid == 0) {
      signal(SIGTERM, SIG_DFL);
      signal(SIGINT, SIG_DFL);
      /* Only the startscript gets the caller's uid: pid 1 stays in the container's user
         namespace, so that `runc exec` can join the instance's namespaces through it. */
      int rc = become(uid, gid);
      if (rc) _exit(rc);
      execvp(argv[0], argv);
      fprintf(stderr, "warren: %s: %s\n", argv[0], strerror(errno));
      _exit(errno == ENOENT ? 127 : 126);
    }
  }
  for (;;) {
    if (stopping) {
      kill(-1, SIGTERM);
      /* Wait for the instance's processes; whoever stops it sends SIGKILL after its grace. */
      while (wait(NULL) > 0 || errno == EINTR) {
      }
      return 0;
    }
    if (wait(NULL) < 0) {
      if (errno == ECHILD) pause();
    }
  }
}

static int parse_id(const char *s, unsigned long *out) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || !end || *end || end == s || v > 4294967294UL) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  unsigned long uid, gid;
  if (argc < 4 || parse_id(argv[1], &uid) || parse_id(argv[2], &gid)) {
    fprintf(stderr, "warren-userid: usage: warren-userid UID GID CMD [ARGS...]\n");
    return 125;
  }
  if (strcmp(argv[3], "--warren-instance") == 0) return instance_init(uid, gid, argc - 4, argv + 4);
  int rc = become(uid, gid);
  if (rc) return rc;
  execvp(argv[3], argv + 3);
  int e = errno;
  fprintf(stderr, "warren: %s: %s\n", argv[3], strerror(e));
  return e == ENOENT ? 127 : 126;
}
