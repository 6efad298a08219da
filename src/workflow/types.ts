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
  /** Fuzzfile top-level `files:`: NAME -> content. Jobs' `files` and ingress sources refer
   *  to them as `file://NAME`. */
  inlineFiles?: Record<string, string>;
  /** Top-level `annotations` (kept as written; see docs/workflow-format.md for which Warren
   *  acts on: today none, they are shown by `warren status`). */
  annotations?: Record<string, string>;
  /** Top-level `description`. */
  description?: string;
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

/** Who owns a persistent volume: `volume://user/...` or `volume://account/...` (a group's). */
export type VolumeScope = 'user' | 'account';

export interface VolumeSpec {
  name: string;
  /** As written: `volume://user/ephemeral`, `volume://user/persistent/NAME`, ... (v4 `use`
   *  files: the reference built from `use` and `name`). */
  reference: string;
  kind: VolumeKind;
  /** `user` unless the reference names `account` (or `group`, Fuzzball's newer name for it). */
  scope?: VolumeScope;
  /** For persistent volumes: NAME (`default` when the reference has none: `volume://user/persistent`). */
  persistentName?: string;
  /** v4: the storage class the file names (`use: CLASS`); undefined for the built-in ones. */
  storageClass?: string;
  /** v4 `size:` in bytes (a quota asked of the storage class; Warren's built-in classes record it). */
  sizeBytes?: number;
  /** v4 volume `annotations` (Fuzzball: provisioner selection), kept as written. */
  annotations?: Record<string, string>;
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
  /** A transfer's `policy` (timeout of the transfer, attempts). */
  policy?: { timeoutSec?: number; attempts?: number };
  /** An ingress whose source is `file://NAME` naming a top-level `files:` entry: its content
   *  is written at the destination instead of fetching anything (`source.uri` stays
   *  `file://NAME`, not resolved against the workflow's directory). */
  inlineFile?: { name: string; content: string };
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
  /** `cpu.sockets` (Fuzzball: whole sockets asked for; recorded, a placement hint). */
  sockets?: number;
  /** `resource.annotations`, kept as written. */
  annotations?: Record<string, string>;
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
  description?: string;
}

export interface TaskArraySpec {
  start: number;
  end: number; // inclusive
  concurrency: number; // 0 = unlimited
}

export interface MultinodeSpec {
  nodes: number;
  implementation: 'openmpi' | 'mpich' | 'gasnet';
  /** `procs-per-node`: ranks per node (default: the cores given to the job on that node). */
  procsPerNode?: number;
}

export interface ImageSpec {
  uri: string;
  secret?: string;
  /** `image.secrets` (a map of secret kind -> secret reference, as Fuzzball writes it). */
  secrets?: Record<string, string>;
  /** `image.decryptionSecret`: the secret that holds the key of an encrypted SIF. */
  decryptionSecret?: string;
  /** `image.binds`: paths of the node bound into the container (Apptainer's --bind). */
  binds?: { source: string; target: string; readOnly: boolean }[];
  /** `image.overlays`: directories or squashfs images laid over the image (Apptainer's --overlay); at most one writable. */
  overlays?: { path: string; readOnly: boolean }[];
}

/** One port a service listens on (`services.S.network.ports[]`). */
export interface ServicePort {
  name: string;
  port: number;
  protocol: 'tcp' | 'udp';
}

/** An endpoint a service offers (`network.endpoints[]`): a named way in, to one of its ports. */
export interface ServiceEndpoint {
  name: string;
  /** Names a port in `ports`. */
  portName: string;
  protocol: 'http' | 'https' | 'grpc' | 'grpcs' | 'tcp' | 'tls';
  type: 'subdomain' | 'path';
  scope: 'user' | 'group' | 'organization' | 'public';
}

/** A Kubernetes-style readiness probe: exactly one action; seconds. A service is ready
 *  (RUNNING, for `depends-on` status RUNNING) once its probe has passed `successThreshold`
 *  times in a row; it fails after `failureThreshold` failures in a row once the probe's
 *  patience (initialDelay + failureThreshold × period) is spent. */
export interface ReadinessProbe {
  action:
    | { kind: 'http'; path: string; port: number; scheme: 'HTTP' | 'HTTPS'; headers: { name: string; value: string }[] }
    | { kind: 'tcp'; port: number }
    | { kind: 'exec'; command: string[] }
    | { kind: 'grpc'; port: number; service?: string };
  initialDelaySec: number;
  periodSec: number;
  timeoutSec: number;
  successThreshold: number;
  failureThreshold: number;
}

export interface ServiceSpec {
  ports: ServicePort[];
  endpoints: ServiceEndpoint[];
  /** Keep running when no job of the workflow needs it any more (until canceled or the
   *  workflow's timeout). A workflow made only of services behaves as if all persist. */
  persist: boolean;
  probe?: ReadinessProbe;
  /** `network.host: true` (Fuzzball catalog files): the service shares the node's network
   *  namespace instead of getting its own. */
  host?: boolean;
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
  /** A long-running service (`services`): started like a job, stopped when no job needs it
   *  (unless it persists). */
  service: boolean;
  /** For services: ports, endpoints, probe, persist. */
  serviceSpec?: ServiceSpec;
  /** Job `network` (Fuzzball: `isolated`, `expose-tcp`, `expose-udp`). */
  network?: { isolated: boolean; exposeTcp: number[]; exposeUdp: number[] };
  /** Files written into the job before it starts: absolute path in the job -> content
   *  (a `file://NAME` value already resolved from the top-level `files:`). */
  files?: Record<string, string>;
  /** Job/service `annotations` and `description`, kept as written. */
  annotations?: Record<string, string>;
  description?: string;
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
