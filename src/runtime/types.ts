// The contract between an agent and the things that execute work on a node. A process
// runtime and a container runtime both implement `Runtime`; the shared contract suite in
// test/runtime/contract.ts runs against each.

export interface BindMount {
  /** Path on the node. */
  host: string;
  /** Path inside the job (for process jobs this equals `host`). */
  target: string;
  readOnly: boolean;
}

export interface ContainerOptions {
  /** Image URI as written in the workflow (`docker://...`, `oras://...`, `file:///x.sif`, a rootfs dir). */
  image: string;
  /** Credentials for the registry, if any (from a workflow secret). */
  auth?: { username: string; password: string } | { token: string };
  /** Run as root inside (default: the submitting user's uid/gid). */
  asRoot?: boolean;
  /** Isolate the network (own empty network namespace). */
  isolateNetwork?: boolean;
  hostname?: string;
  /** Size of /dev/shm in bytes (default 64 MiB, larger for MPI). */
  shmBytes?: number;
  /** Allocated GPU indices on this node (passed through with the driver's libraries). */
  gpus?: number[];
  /** Paths of the node bound in (workflow `image.binds`, Apptainer's --bind). */
  binds?: { source: string; target: string; readOnly: boolean }[];
  /** Directories or squashfs images laid over the image (workflow `image.overlays`); at most one writable. */
  overlays?: { path: string; readOnly: boolean }[];
  /** The key of an encrypted SIF (warren-sif-enc-v1; from `image.decryptionSecret`): a PEM RSA
   *  private key, or a passphrase. Kept in memory only; the plaintext goes to a private tmpfs. */
  decryption?: { key?: string; passphrase?: string };
}

export interface LaunchRequest {
  /** Unique id of this attempt on this node, e.g. `wf123/align/7/1`. Safe for file names after sanitizing. */
  id: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** Files that receive the job's stdout and stderr (appended). */
  stdoutPath: string;
  stderrPath: string;
  /** Kill the whole process group after this many seconds; exit reason `timeout`. */
  timeoutSec?: number;
  /** Memory limit in bytes; exceeding it kills the job; exit reason `oom`. */
  memoryBytes?: number;
  /** CPU cores granted (limits where the runtime can enforce it). */
  cores?: number;
  mounts: BindMount[];
  /** Present for jobs that run in a container. */
  container?: ContainerOptions;
  /** Run as this Unix identity (the submitting user's account on the node, looked up by the
   *  agent); absent: as the agent's own user. */
  user?: { uid: number; gid: number; groups: number[]; name: string };
  /** Called once the job's process exists but before its command is exec'd, with what identifies
   *  it on the node. The command runs only after the promise resolves; if it rejects, the held
   *  process is killed and the task ends with reason 'spawn-error' and the rejection's message. */
  beforeExec?: (info: { pid: number; cgroup: string | null }) => Promise<void>;
}

export type ExitReason = 'exit' | 'signal' | 'timeout' | 'oom' | 'canceled' | 'spawn-error' | 'stopped' | 'error';

export interface ExitInfo {
  /** Exit status when the process exited normally, else null. */
  exitCode: number | null;
  /** Signal name when killed by a signal, else null. */
  signal: string | null;
  reason: ExitReason;
  /** Human message for spawn errors, timeouts and out-of-memory kills. */
  message?: string;
  /** Wall time in milliseconds from launch to exit. */
  durationMs: number;
  /** Peak memory of the whole job in bytes (jobs in their own cgroup, where the kernel reports it). */
  memoryPeakBytes?: number;
  /** CPU time (user + system) of the whole job in milliseconds (jobs in their own cgroup). */
  cpuMs?: number;
}

export interface RunningTask {
  readonly pid: number | undefined;
  /** Resolves with the pid once the task is running, or null if it never started. Never rejects.
   *  Optional: runtimes that start synchronously may omit it (then `pid` is read at launch). */
  readonly started?: Promise<number | null>;
  /** Resolves once, when the whole task has ended. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** The job's cgroup (e.g. `/warren/jobs/<name>`), null when it runs in a process group only;
   *  known once `started` resolved (and in beforeExec). */
  readonly cgroup?: string | null;
  /** Stop the task: SIGTERM to its process group (and every process in its cgroup), SIGKILL
   *  to all of them after `graceMs` (default 1000). */
  kill(reason: 'canceled' | 'timeout', graceMs?: number): void;
  /** Run a command inside the running task (a container's `runc exec`: its user, environment
   *  and working directory), bounded by `timeoutMs` (services' exec readiness probes).
   *  Runtimes whose tasks are host processes leave it out (the agent runs the command itself). */
  exec?(argv: string[], timeoutMs: number): Promise<{ exitCode: number | null; output: string; timedOut?: boolean }>;
}

export interface Runtime {
  readonly name: string;
  /** Can this runtime run this request on this node (e.g. container needs runc)? Throws a WarrenError saying what is missing. */
  check?(req: LaunchRequest): Promise<void>;
  launch(req: LaunchRequest): RunningTask;
}
