// The contract of a site that Warren starts capacity on (issue 14): a cloud region (the local
// driver, AWS EC2) or a Slurm site in pilot mode (each "instance" is a pilot job running `warren
// agent`). Every instance runs one `warren agent` that joins the server with the join token it
// was started with, under the node name it was given; from then on it is a node of the cluster
// (cluster mode's rules: down, lost, re-run elsewhere). Drivers do I/O; the decisions (how many,
// of which type, when to stop) are the planner's and the elastic controller's.

/** What an instance is doing, as its driver sees it. */
export type InstanceState = 'pending' | 'booting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface InstanceRequest {
  /** The node name its agent joins as (unique in the cluster). */
  node: string;
  /** An instance type of the site (cloud), or the pilot's size (Slurm: cores, memory). */
  instanceType: string;
  /** Ask for a spot (preemptible) instance. */
  spot?: boolean;
  /** The join token minted for this instance (one use; valid as long as it may wait to boot). */
  joinToken: string;
  /** Where the agent reaches the server, and the CA it trusts (PEM). */
  serverUrl: string;
  caPem: string;
  /** The agent's labels (the scheduler's), e.g. site=aws-east. */
  labels: Record<string, string>;
  /** Most seconds it may live (Slurm: the pilot's walltime); undefined: until stopped. */
  walltimeSec?: number;
}

export interface InstanceView {
  /** The driver's id (a cloud instance id, a Slurm job id). */
  id: string;
  node: string;
  instanceType: string;
  spot: boolean;
  state: InstanceState;
  /** ms since the epoch. */
  requestedAt: number;
  runningAt: number | null;
  endedAt: number | null;
  /** Why it failed or stopped, when the driver knows (a spot reclaim, a Slurm cancel). */
  reason: string | null;
}

/** One driver per site kind. `check` runs before anything is submitted (bad input: exit 2). */
export interface SiteDriver {
  readonly kind: string;
  /** The site's settings can be used: credentials found, the partition exists, sbatch runs. Throws SITE_* naming the site. */
  check(): Promise<void>;
  start(req: InstanceRequest): Promise<InstanceView>;
  list(): Promise<InstanceView[]>;
  /** Stop (and release) an instance; stopping a stopped one is not an error. */
  stop(id: string): Promise<void>;
  /** Stop everything this driver started and forget it (tests, shutdown of a demo). */
  close(): Promise<void>;
}
