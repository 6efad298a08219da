// The normalized workflow model. Whatever the input dialect (Fuzzfile v1, v4, WfFormat
// JSON), `src/workflow` turns it into this shape; the engine, scheduler, data and runtime
// subsystems only ever see this. All sizes are bytes, all durations seconds.

export type Dialect = 'v1' | 'v4' | 'wfformat';

/** A place in the source file, 1-based. */
export interface SourcePos {
  line: number;
  col: number;
}

export interface Workflow {
  /** Workflow name: `name:` key, else the file's base name without extension. */
  name: string;
  dialect: Dialect;
  /** Path of the file it was read from, when it came from a file. */
  file?: string;
  volumes: Record<string, VolumeSpec>;
  /** Jobs in file order (object key order is preserved). Services are jobs with `service: true`. */
  jobs: Record<string, JobSpec>;
  policy: WorkflowPolicy;
  /** Data files known to the workflow (WfFormat `files`): id -> size in bytes. */
  files?: Record<string, { sizeBytes: number }>;
}

export interface WorkflowPolicy {
  /** Finish within this many seconds from the start (planner objective). */
  deadlineSec?: number;
  /** Spend at most this much (platform currency). */
  budget?: number;
  /** Whole-workflow timeout in seconds. */
  timeoutSec?: number;
  /** Refuse images that are not signed by a trusted key (SIF signatures), before anything runs. */
  requireSigned?: boolean;
  /** Keys trusted for this workflow (fingerprints or public key files), in addition to the node's trusted keys. */
  trustedKeys?: string[];
}

export type VolumeKind = 'ephemeral' | 'persistent';

export interface VolumeSpec {
  name: string;
  /** As written: `volume://user/ephemeral` or `volume://user/persistent/NAME`. */
  reference: string;
  kind: VolumeKind;
  /** For persistent volumes: NAME. */
  persistentName?: string;
  ingress: TransferSpec[];
  egress: TransferSpec[];
}

export interface TransferSpec {
  /** `file://`, `http://`, `https://` or `s3://` URI. For ingress destination / egress
   *  source it is a path relative to the volume root (`file://input/x.fa` or `file:///abs`). */
  source: { uri: string; secret?: string };
  destination: { uri: string; secret?: string };
  /** Expected SHA-256 (hex) of the transferred content. */
  sha256?: string;
  /** Expected size in bytes (workflow `size:`): a longer body is refused as soon as it passes
   *  this, a shorter one when it ends. */
  sizeBytes?: number;
}

export type CpuAffinity = 'core' | 'socket' | 'numa';

export interface ResourceSpec {
  cores: number;
  affinity: CpuAffinity;
  threads: boolean;
  /** Total memory in bytes (already multiplied by cores when `by-core` was set). */
  memoryBytes?: number;
  memoryByCore: boolean;
  /** Device requests, e.g. { "nvidia.com/gpu": 1 }. */
  devices: Record<string, number>;
  exclusive: boolean;
}

export interface MountSpec {
  volume: string;
  location: string;
  readOnly: boolean;
}

/** `succeeded`: the requirement must succeed (default, v1 `requires`); `finished`: any end
 *  state; `failed`: runs only if the requirement failed; `running`: the requirement (a
 *  service) must have started. */
export type DependencyCondition = 'succeeded' | 'finished' | 'failed' | 'running';

export interface Dependency {
  job: string;
  condition: DependencyCondition;
}

export interface TaskArraySpec {
  start: number;
  end: number; // inclusive
  concurrency: number; // 0 = unlimited
}

export interface MultinodeSpec {
  nodes: number;
  implementation: 'openmpi' | 'mpich' | 'gasnet';
}

export interface ImageSpec {
  uri: string;
  secret?: string;
}

export interface JobPolicy {
  timeoutSec?: number;
  /** Total attempts including the first one (Fuzzfile `retry.attempts`); 1 = no retry. */
  attempts: number;
  /** Base of the exponential backoff between attempts, in seconds. */
  backoffSec: number;
}

export interface JobSpec {
  name: string;
  /** A long-running service (v4 `services`): started like a job, stopped when the workflow ends. */
  service: boolean;
  image?: ImageSpec;
  /** argv; for `script` jobs the runtime writes the script and runs it. */
  command?: string[];
  script?: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  mounts: MountSpec[];
  requires: Dependency[];
  resources: ResourceSpec;
  taskArray?: TaskArraySpec;
  multinode?: MultinodeSpec;
  policy: JobPolicy;
  estimateSec?: number;
  /** WfFormat: input and output file ids (for the planner's data model). */
  inputs?: string[];
  outputs?: string[];
  /** Where the job was written in its file (for messages). */
  pos?: SourcePos;
}

/** One diagnostic from parsing/validation. */
export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  /** Dotted path into the document, e.g. `jobs.align.requires[1]`. */
  path: string;
  message: string;
  hint?: string;
  severity: 'error' | 'warning';
}
