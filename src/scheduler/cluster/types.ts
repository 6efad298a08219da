// The cluster scheduler's input and output: nodes with their capacity and what is allocated on
// them, pending jobs, running jobs with their expected ends, and the result (placements, and for
// each job left pending a Status that says why). Pure data: times are numbers (seconds, on any
// clock the caller chooses) passed in; nothing here reads a clock.

/** A node of the cluster as the scheduler sees it. */
export interface ClusterNode {
  /** Unique in the cluster. */
  name: string;
  cores: number;
  memoryBytes: number;
  /** GPUs: how many, and the models present (a node usually has one model). */
  gpus: { count: number; models: readonly string[] };
  /** Node labels (`rack=r12`, `zone=a`, `ib=hdr`), matched by job constraints. */
  labels: Readonly<Record<string, string>>;
  /** A drained node runs what it has but receives no new job. */
  drained: boolean;
  /** `os/arch` or `os/arch/variant`, as in OCI image indexes: `linux/amd64`, `linux/arm64/v8`. */
  platform: string;
  /** What is allocated now (running jobs, and anything else the node reserves). */
  allocated: { cores: number; memoryBytes: number; gpus: number };
  /** Digests of the images in the node's cache (`sha256:...`). */
  cachedImages: readonly string[];
  /** Names of the data volumes whose data is on the node. */
  dataVolumes: readonly string[];
  /** When given: the unix accounts of the node; a job's user must be one of them. Absent: any. */
  unixUsers?: readonly string[];
}

/** A job waiting for a node. One job runs on one node, or a gang of `nodes` distinct nodes
 *  at once (a multinode job: all or none; cores, memory and GPUs are per node). */
export interface PendingJob {
  /** Unique among the pending jobs. */
  id: string;
  /** Who submitted it: the unit of fair share. */
  user: string;
  cores: number;
  memoryBytes: number;
  gpus: number;
  /** When given, the node must have a GPU of this model. */
  gpuModel?: string;
  /** Node constraints: `k=v`, `k!=v`, `k in (a, b)`, `k notin (a, b)`, `k` (label present),
   *  `!k` (label absent). All must hold. See parseConstraint. */
  constraints?: readonly string[];
  /** The job needs the whole node: it goes only to an empty node and takes all of it. */
  exclusive?: boolean;
  /** The image the job runs, when it runs in a container: its platform and digest. */
  image?: { platform: string; digest: string };
  /** Data volumes the job reads (preferred: nodes that have them). */
  dataVolumes?: readonly string[];
  /** Submission order (lower first), the tie break after priority and fair share. */
  submitOrder: number;
  /** Higher runs first, before fair share (default 0). */
  priority?: number;
  /** The job's time limit in seconds (its expected end is now + timeLimit). Without it the job
   *  may use reserved room only when there is room beyond the reservation, and it is charged
   *  ScheduleOptions.defaultRuntime for fair share. */
  timeLimit?: number;
  /** A gang: this many distinct nodes at once, each with the job's resources (default 1). */
  nodes?: number;
}

/** A job already running on a node: its resources come back at `expectedEnd`. */
export interface RunningJob {
  id: string;
  node: string;
  cores: number;
  memoryBytes: number;
  gpus: number;
  /** Absolute time (same clock as `now`) when it is expected to end (its time limit);
   *  Infinity when unknown. */
  expectedEnd: number;
}

export type Strategy = 'binpack' | 'spread';

export interface ScheduleOptions {
  /** Fill nodes (binpack, the default: keeps whole nodes free for large and exclusive jobs) or
   *  spread jobs across nodes. */
  strategy?: Strategy;
  /** Nodes that fit that are scored per placement (Nomad's limit). 'log2' (default):
   *  max(2, ceil(log2(nodes))); a number; Infinity scores every node that fits. */
  limit?: number | 'log2';
  /** Backfill with reservations (EASY): the first `reservations` jobs in queue order that fit
   *  a node but find no room now get a reservation on the node where they fit soonest (default 1;
   *  0 turns reservations off: plain first-fit backfill with no guarantee for large jobs). */
  reservations?: number;
  /** Seconds charged to a user for fair share per core of a job without a time limit (3600). */
  defaultRuntime?: number;
  /** Scorer weights (defaults 1 each). */
  weights?: { fit?: number; image?: number; data?: number };
}

export interface ScheduleInput {
  /** The current time, on the clock of RunningJob.expectedEnd. */
  now: number;
  nodes: readonly ClusterNode[];
  jobs: readonly PendingJob[];
  running?: readonly RunningJob[];
  /** Decayed usage per user (core-seconds, decayed by the caller, e.g. Slurm's half-life). */
  usage?: Readonly<Record<string, number>>;
  /** Fair-share shares per user (default 1 each). */
  shares?: Readonly<Record<string, number>>;
  options?: ScheduleOptions;
}

export interface Placement {
  job: string;
  node: string;
  /** What the job holds on the node (the whole node for an exclusive job). */
  cores: number;
  memoryBytes: number;
  gpus: number;
  /** now + timeLimit, or Infinity. */
  expectedEnd: number;
  /** The winning score in [0, 1]. */
  score: number;
  /** It runs on room that a reservation holds for a larger job, ending before it. */
  backfilled: boolean;
  /** A gang's nodes, best first (`node` is the first); absent for a one-node job. */
  nodes?: string[];
}

/** Why a job is not placed. 'unschedulable': no node can take it now (reasons counts, per
 *  filter, the nodes that filter refused: they add up to nodesConsidered). 'error': the job
 *  itself is invalid (errorCode and message say why; no node was considered). */
export interface Status {
  code: 'unschedulable' | 'error';
  /** Refused nodes per reason, e.g. {"needs 4 GPUs": 12}. */
  reasons: Record<string, number>;
  nodesConsidered: number;
  /** One line for `warren status`: "needs 4 GPUs: 0 of 12 nodes have them". */
  message: string;
  errorCode?: string;
}

/** Where and when a waiting job is promised room (EASY backfill). */
export interface Reservation {
  job: string;
  node: string;
  /** When its room is free, given the expected ends of what runs there. */
  start: number;
}

export interface PendingResult {
  job: string;
  status: Status;
  reservation?: Reservation;
}

export interface FairShareRow {
  user: string;
  usage: number;
  shares: number;
  /** Slurm's classic fair-share factor 2^(-usage share / shares share), in (0, 1]. */
  factor: number;
}

export interface ScheduleResult {
  /** In the order they were decided (queue order). */
  placements: Placement[];
  /** Every job not placed, in queue order. */
  pending: PendingResult[];
  reservations: Reservation[];
  /** The fair-share factors the queue started from, by user name. */
  fairShare: FairShareRow[];
  metrics: {
    /** Node checks made (the cost of scheduling). */
    nodesEvaluated: number;
    jobClasses: number;
    nodeClasses: number;
  };
}
