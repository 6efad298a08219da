/*
 * warren-mpi: the node side of Warren's multi-node MPI launch (docs/mpi.md). One static
 * binary, bind-mounted into a multinode job's container at /.warren/bin (or run from the
 * agent's dist/bin for jobs without an image). It talks to the job's agent over the Unix
 * socket named by $WARREN_MPI_SOCKET, in lines.
 *
 *   warren-mpi rsh [opts] HOST CMD...   the launch hook: OpenMPI's plm_rsh_agent and
 *                                       Hydra's -launcher-exec. Asks the agent to start CMD
 *                                       (joined by spaces, as rsh and ssh do) on the gang's
 *                                       node HOST, inside that node's copy of the job; waits
 *                                       for it to end and exits with its status. Killed (or
 *                                       its socket closed), the remote daemon is killed.
 *   warren-mpi launch PROGRAM ARGS...   the job's first process on the launcher node: execs
 *                                       PROGRAM (mpirun, mpiexec) from PATH; when the image
 *                                       has none, says so to the agent and exits 127.
 *   warren-mpi rank CMD...              wraps each rank: sets WARREN_RANK, WARREN_LOCAL_RANK
 *                                       and WARREN_SIZE from the MPI implementation's own
 *                                       variables, runs CMD, and when it fails tells the
 *                                       agent which rank on which node failed with what.
 *
 * Requests (to the agent), one JSON object per line:
 *   {"op":"launch","host":H,"command":C}
 *   {"op":"rank-exit","rank":R,"code":N,"signal":S}
 *   {"op":"launcher-missing","launcher":P,"path":PATH}
 * Answers (from the agent) to a launch, one per line:
 *   M <text>       print <text> on stderr (what the remote daemon or Warren has to say)
 *   E <status>     the remote daemon ended: exit with <status> (0..255)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int die(const char *what) {
  fprintf(stderr, "warren-mpi: %s: %s\n", what, strerror(errno));
  return 255;
}

/* Append s to buf as the inside of a JSON string. */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", f);
    else if (*p == '\t') fputs("\\t", f);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

/* One request line {"op":OP,"K1":V1,"K2":V2} (string values), malloc'd; *len set. */
static char *request2(const char *op, const char *k1, const char *v1, const char *k2, const char *v2, size_t *len) {
  char *line = NULL;
  FILE *m = open_memstream(&line, len);
  fprintf(m, "{\"op\":\"%s\",\"%s\":", op, k1);
  json_str(m, v1);
  fprintf(m, ",\"%s\":", k2);
  json_str(m, v2);
  fputs("}\n", m);
  fclose(m);
  return line;
}

static int connect_agent(void) {
  const char *path = getenv("WARREN_MPI_SOCKET");
  if (!path || !*path) {
    fprintf(stderr, "warren-mpi: WARREN_MPI_SOCKET is not set (this runs inside a Warren multinode job only)\n");
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a.sun_path) {
    fprintf(stderr, "warren-mpi: socket path too long: %s\n", path);
    close(fd);
    return -1;
  }
  strcpy(a.sun_path, path);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    fprintf(stderr, "warren-mpi: cannot reach the Warren agent at %s: %s\n", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* Send one request line (built in a memory stream) and keep the connection open. */
static int send_line(int fd, char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, buf + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    off += (size_t)w;
  }
  return 0;
}

static volatile sig_atomic_t got_signal = 0;
static void on_signal(int s) { got_signal = s; }

/* Note the launcher's termination signals in got_signal (no SA_RESTART: reads and waits return). */
static void catch_signals(int forward_usr) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  if (forward_usr) {
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
  }
}

static int cmd_rsh(int argc, char **argv) {
  int i = 0;
  /* Options an rsh/ssh-style caller may put before the host (none expected; skip them). */
  while (i < argc && argv[i][0] == '-') i++;
  if (argc - i < 2) {
    fprintf(stderr, "warren-mpi rsh: usage: warren-mpi rsh HOST COMMAND...\n");
    return 255;
  }
  const char *host = argv[i++];
  size_t n = 0;
  for (int k = i; k < argc; k++) n += strlen(argv[k]) + 1;
  char *cmd = malloc(n + 1);
  if (!cmd) return die("malloc");
  cmd[0] = 0;
  for (int k = i; k < argc; k++) {
    if (k > i) strcat(cmd, " ");
    strcat(cmd, argv[k]);
  }
  int fd = connect_agent();
  if (fd < 0) return 255;
  size_t len = 0;
  char *line = request2("launch", "host", host, "command", cmd, &len);
  if (send_line(fd, line, len) < 0) return die("write to the agent");
  free(line);
  /* A signal from the launcher (it tears the job down) ends us; the agent sees the socket
   * close before an answer and kills the remote daemon. */
  catch_signals(0);
  /* stdin is not forwarded (OpenMPI and Hydra daemons read none); close it. */
  close(0);
  char buf[8192];
  size_t have = 0;
  for (;;) {
    if (got_signal) {
      close(fd);
      return 128 + got_signal;
    }
    ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
    if (r < 0) {
      if (errno == EINTR) continue;
      return die("read from the agent");
    }
    if (r == 0) {
      fprintf(stderr, "warren-mpi: the Warren agent closed the launch of %s without an answer\n", host);
      return 255;
    }
    have += (size_t)r;
    buf[have] = 0;
    char *start = buf;
    char *nl;
    while ((nl = strchr(start, '\n')) != NULL) {
      *nl = 0;
      if (start[0] == 'M' && start[1] == ' ') fprintf(stderr, "%s\n", start + 2);
      else if (start[0] == 'E' && start[1] == ' ') {
        close(fd);
        return atoi(start + 2) & 0xff;
      }
      start = nl + 1;
    }
    have = strlen(start);
    memmove(buf, start, have);
    if (have == sizeof buf - 1) have = 0; /* an over-long line: drop it */
  }
}

static void tell(const char *json) {
  int fd = connect_agent();
  if (fd < 0) return;
  (void)send_line(fd, (char *)json, strlen(json));
  /* Wait for the agent to read it (it closes), so that the report precedes our exit. */
  char c;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (read(fd, &c, 1) > 0) {
  }
  close(fd);
}

static int cmd_launch(int argc, char **argv) {
  if (argc < 1) {
    fprintf(stderr, "warren-mpi launch: usage: warren-mpi launch PROGRAM ARGS...\n");
    return 255;
  }
  /* PROGRAM may list candidates, first found wins: "mpiexec.hydra:mpiexec". */
  char *names = strdup(argv[0]);
  const char *names_all = strdup(argv[0]);
  int e = ENOENT;
  for (char *save = NULL, *p = strtok_r(names, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
    argv[0] = p;
    execvp(p, argv);
    if (errno != ENOENT) {
      e = errno;
      break;
    }
  }
  const char *path = getenv("PATH");
  if (!path) path = "";
  if (e == ENOENT) {
    size_t len = 0;
    tell(request2("launcher-missing", "launcher", names_all, "path", path, &len));
    fprintf(stderr, "warren-mpi: %s is not on PATH (%s)\n", names_all, path);
    return 127;
  }
  fprintf(stderr, "warren-mpi: cannot run %s: %s\n", argv[0], strerror(e));
  return 126;
}

static const char *first_env(const char *const *names) {
  for (; *names; names++) {
    const char *v = getenv(*names);
    if (v && *v) return v;
  }
  return NULL;
}

static int cmd_rank(int argc, char **argv) {
  if (argc < 1) {
    fprintf(stderr, "warren-mpi rank: usage: warren-mpi rank COMMAND...\n");
    return 255;
  }
  static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", NULL};
  static const char *const local_vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", NULL};
  static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
  const char *rank = first_env(rank_vars);
  const char *local = first_env(local_vars);
  const char *size = first_env(size_vars);
  if (rank) setenv("WARREN_RANK", rank, 1);
  if (local) setenv("WARREN_LOCAL_RANK", local, 1);
  if (size) setenv("WARREN_SIZE", size, 1);
  pid_t pid = fork();
  if (pid < 0) return die("fork");
  if (pid == 0) {
    execvp(argv[0], argv);
    fprintf(stderr, "warren-mpi: rank %s: cannot run %s: %s\n", rank ? rank : "?", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  /* Pass the launcher's signals on to the rank. */
  catch_signals(1);
  int st;
  for (;;) {
    pid_t w = waitpid(pid, &st, 0);
    if (w == pid) break;
    if (w < 0 && errno == EINTR) {
      if (got_signal) {
        kill(pid, got_signal);
        got_signal = 0;
      }
      continue;
    }
    return die("waitpid");
  }
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (code != 0) {
    const char *node = getenv("WARREN_NODE");
    char line[512];
    if (WIFSIGNALED(st))
      snprintf(line, sizeof line, "{\"op\":\"rank-exit\",\"rank\":%s,\"code\":null,\"signal\":%d}\n", rank ? rank : "null", WTERMSIG(st));
    else
      snprintf(line, sizeof line, "{\"op\":\"rank-exit\",\"rank\":%s,\"code\":%d,\"signal\":null}\n", rank ? rank : "null", code);
    tell(line);
    if (WIFSIGNALED(st))
      fprintf(stderr, "warren: rank %s on node %s was killed by signal %d\n", rank ? rank : "?", node ? node : "?", WTERMSIG(st));
    else
      fprintf(stderr, "warren: rank %s on node %s exited with code %d\n", rank ? rank : "?", node ? node : "?", code);
  }
  return code;
}

int main(int argc, char **argv) {
  const char *self = strrchr(argv[0], '/');
  self = self ? self + 1 : argv[0];
  /* Called by the name "rsh" (a link in the same directory): the hook. */
  if (strcmp(self, "rsh") == 0) return cmd_rsh(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "rsh") == 0) return cmd_rsh(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "launch") == 0) return cmd_launch(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "rank") == 0) return cmd_rank(argc - 2, argv + 2);
  fprintf(stderr, "usage: warren-mpi rsh HOST COMMAND... | launch PROGRAM ARGS... | rank COMMAND...\n");
  return 255;
}
