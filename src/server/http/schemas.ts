// JSON schemas of the HTTPS API's wire shapes (src/api/types.ts, src/api/wire.ts). The
// routes validate requests against them (fastify's ajv), serialize responses with them, and
// docs/api/openapi.json is generated from them: they are the one description of the wire.
// Each shared schema has an `$id`, referenced as `{ $ref: 'Name#' }` and emitted as
// `components.schemas.Name` in the OpenAPI document.

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const bool = { type: 'boolean' } as const;
const nullable = <T extends { type: string }>(s: T) => ({ ...s, type: [s.type, 'null'] }) as const;
/** Milliseconds since the epoch. */
const ms = { type: 'number', description: 'milliseconds since the epoch' } as const;
const msOrNull = { type: ['number', 'null'], description: 'milliseconds since the epoch' } as const;

export const WORKFLOW_STATUS = ['pending', 'running', 'succeeded', 'failed', 'canceled'] as const;
export const UNIT_STATES = ['pending', 'ready', 'starting', 'running', 'succeeded', 'failed', 'canceled', 'skipped'] as const;
export const NODE_STATES = ['ready', 'down', 'lost', 'draining', 'drained', 'revoked'] as const;

/** Workflow ids and id prefixes (base-36 time + hex). */
export const ID_PATTERN = '^[A-Za-z0-9_.-]{1,128}$';
/** Node, user and token names: one SPIFFE path segment (src/mesh isSpiffeName). */
export const NAME_PATTERN = '^[A-Za-z0-9_.-]{1,255}$';

const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties)) => ({
  type: 'object',
  additionalProperties: false,
  properties,
  required,
});

export const SHARED_SCHEMAS = [
  {
    $id: 'Error',
    description: 'The error body of every failed request: `{ "error": { code, message, hint, details } }` (docs/errors.md).',
    ...obj({
      error: obj(
        {
          code: { ...str, description: 'a stable code of docs/errors/*.md' },
          message: { ...str, description: 'what is wrong' },
          hint: { ...str, description: 'what to do next' },
          details: { type: 'object', additionalProperties: true, description: 'structured facts about the error' },
        },
        ['code', 'message'],
      ),
    }),
  },
  {
    $id: 'Health',
    ...obj(
      {
        ok: bool,
        version: str,
        store: obj({ ok: bool, kind: str, error: str }, ['ok', 'kind']),
        leader: bool,
        role: { type: 'string', enum: ['leader', 'follower'], description: 'leader: this server schedules and drives the runs; follower: it serves reads and forwards the rest to the leader' },
        leaderUrl: { type: ['string', 'null'], description: "the leader's URL, when one holds the leadership" },
        term: { ...int, description: "the leadership's term (grows by one at each change of leader)" },
        nodes: obj({ ready: int, total: int }),
        messages: { type: 'array', items: str },
      },
      ['ok', 'version', 'store', 'messages'],
    ),
  },
  {
    $id: 'ServerStatus',
    ...obj(
      {
        ready: { ...bool, description: 'whether this server can take API traffic now (GET /ready says the same)' },
        version: str,
        role: { type: 'string', enum: ['leader', 'follower'] },
        term: { ...int, description: "the leadership's term" },
        leaderUrl: { type: ['string', 'null'], description: "the leader's URL, when one holds the leadership" },
        store: obj({ kind: str, reachable: bool, latencyMs: num, error: str }, ['kind', 'reachable', 'latencyMs']),
        messages: { type: 'array', items: str },
        id: { ...str, description: "this server's id in the leader lease" },
        url: { ...str, description: "this server's advertised URL" },
        agents: {
          ...obj({ ready: int, down: int, lost: int, revoked: int, drained: int, total: int, source: { type: 'string', enum: ['live', 'store'] } }),
          type: ['object', 'null'],
          description: "nodes by state: the leader's live view, or the store's on a follower",
        },
        queue: {
          ...obj({ pending: int, ready: int, starting: int, running: int, oldestWaitingSeconds: { type: ['number', 'null'] }, countedAt: ms }),
          type: ['object', 'null'],
          description: 'units of the pending and running workflows by state, as the store counts them',
        },
        workflows: { ...obj({ pending: int, running: int }), type: ['object', 'null'] },
      },
    ),
  },
  { $id: 'WhoAmI', ...obj({ user: str, unixUser: str, admin: bool, tokenId: str }) },
  {
    $id: 'SubmitRequest',
    ...obj(
      {
        source: { ...str, description: "the workflow file's text (Fuzzfile YAML or WfFormat JSON); the server parses and validates it" },
        filename: { ...str, minLength: 1, maxLength: 4096, description: "the file's name as the user typed it (for file:line:col in errors)" },
        options: obj(
          {
            failFast: bool,
            simulate: { ...num, exclusiveMinimum: 0, description: 'WfFormat replay: sleep estimate × factor instead of each command' },
          },
          [],
        ),
        uploads: {
          type: 'object',
          description: "content-addressed uploads of the workflow's local inputs: original path -> sha256",
          additionalProperties: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        },
      },
      ['source', 'filename'],
    ),
  },
  {
    $id: 'WorkflowSummary',
    ...obj({
      id: str,
      name: str,
      status: { type: 'string', enum: WORKFLOW_STATUS },
      owner: nullable(str),
      file: nullable(str),
      createdAt: ms,
      startedAt: msOrNull,
      endedAt: msOrNull,
      cancelRequested: bool,
      counts: { type: 'object', additionalProperties: int, description: 'units per state' },
      driver: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: { owner: str, expiresAt: ms },
        required: ['owner', 'expiresAt'],
        description: 'who drives it now (a process or server), when someone does',
      },
    }),
  },
  {
    $id: 'Unit',
    ...obj({
      key: str,
      kind: { type: 'string', enum: ['job', 'ingress', 'egress'] },
      job: str,
      task: nullable(int),
      state: { type: 'string', enum: UNIT_STATES },
      attempt: int,
      exitCode: nullable(int),
      reason: nullable(str),
      message: nullable(str),
      startedAt: msOrNull,
      endedAt: msOrNull,
    }),
  },
  {
    $id: 'Attempt',
    ...obj({
      key: str,
      attempt: int,
      attemptId: str,
      node: nullable(str),
      startedAt: msOrNull,
      endedAt: msOrNull,
      exitCode: nullable(int),
      signal: nullable(str),
      reason: nullable(str),
      message: nullable(str),
    }),
  },
  {
    $id: 'Event',
    ...obj({ at: ms, key: nullable(str), level: { type: 'string', enum: ['info', 'warn', 'error'] }, message: str }),
  },
  {
    $id: 'Service',
    description: 'A service of a workflow: its state, where it runs, its ports and endpoints.',
    ...obj({
      name: str,
      state: { type: 'string', enum: ['pending', 'starting', 'ready', 'succeeded', 'failed', 'canceled', 'skipped'], description: 'starting: started, its readiness probe has not passed yet' },
      node: nullable(str),
      host: { ...nullable(str), description: 'the address its ports are reached at, while it runs' },
      persist: bool,
      probe: { ...nullable(str), description: 'its readiness probe in words' },
      ports: { type: 'array', items: obj({ name: str, port: int, protocol: str }) },
      endpoints: { type: 'array', items: obj({ name: str, port: nullable(int), protocol: str, type: str, url: nullable(str) }) },
    }),
  },
  {
    $id: 'WorkflowDetail',
    // WorkflowSummary's properties and these (fast-json-stringify and OpenAPI 3.1 both read allOf;
    // the flat form keeps `additionalProperties: false` meaningful).
    type: 'object',
    additionalProperties: false,
    properties: {} as Record<string, unknown>, // filled below from WorkflowSummary
    required: [] as string[],
  },
  {
    $id: 'StreamItem',
    description:
      'One server-sent event of GET /workflows/{id}/stream: `id: <seq>`, `event: <type>`, `data: <this JSON>`. ' +
      'A failure of the stream after it began is sent as `event: error` with an Error body.',
    oneOf: [
      obj({ type: { const: 'unit' }, seq: int, unit: { $ref: 'Unit#' } }),
      obj({ type: { const: 'event' }, seq: int, event: { $ref: 'Event#' } }),
      obj({ type: { const: 'progress' }, seq: int, key: str, progress: { type: 'object', additionalProperties: true } }),
      obj(
        {
          type: { const: 'done' },
          seq: int,
          status: { type: 'string', enum: WORKFLOW_STATUS },
          error: {
            type: 'object',
            additionalProperties: false,
            properties: { code: str, message: str, hint: str, details: { type: 'object', additionalProperties: true } },
            required: ['code', 'message'],
          },
        },
        ['type', 'seq', 'status'],
      ),
    ],
  },
  {
    $id: 'Node',
    ...obj({
      name: str,
      state: { type: 'string', enum: NODE_STATES },
      cores: num,
      memoryBytes: num,
      gpus: int,
      labels: { type: 'object', additionalProperties: str },
      platform: str,
      lastSeenAt: msOrNull,
      running: int,
      usedCores: num,
      drainReason: { type: ['string', 'null'], description: "why it is drained: the admin's reason or its failing health check's output" },
      drainedBy: { type: ['string', 'null'], enum: ['admin', 'health', null], description: 'who drained it' },
      health: {
        type: ['object', 'null'],
        additionalProperties: false,
        required: ['ok', 'at', 'output'],
        properties: { ok: bool, at: ms, output: str },
        description: "its health check's last result (null: no check, or none heard yet)",
      },
    }),
  },
  {
    $id: 'AuditEntry',
    description: 'One entry of the append-only audit log: who did what, when, from where, and the result.',
    ...obj({
      id: int,
      at: ms,
      actor: { ...str, description: 'the Warren user, or node:NAME for what a health check did' },
      action: { ...str, description: 'noun.verb: user.add, token.revoke, node.drain, workflow.cancel, ...' },
      target: nullable(str),
      source: { type: ['string', 'null'], description: "the client's address (and the follower that forwarded it)" },
      result: { ...str, description: 'ok, or the error code' },
      details: { type: 'object', additionalProperties: true },
    }),
  },
  {
    $id: 'PruneReport',
    description: 'What a prune removed (or, in a dry run, would remove); running work is never pruned.',
    ...obj({
      dryRun: bool,
      endedBefore: { ...ms, description: 'the cutoff: finished workflows that ended before this' },
      workflows: int,
      units: { ...int, description: 'their units: jobs, tasks that ran, data transfers' },
      attempts: int,
      events: int,
      history: { ...int, description: 'job history rows (runtime estimates) older than the cutoff' },
      runDirs: { ...int, description: "run directories removed on the server; nodes remove their own copies" },
      bytesFreed: int,
      keptRunning: { ...int, description: 'running or pending workflows created before the cutoff: kept' },
      keptLeased: { ...int, description: 'finished workflows whose runner still holds them: kept, pruned next time' },
      removed: { type: 'array', items: str, description: 'the ids removed (at most 1000)' },
      durationMs: int,
      interrupted: { ...bool, description: 'it stopped before it was done (an answer within 30 s): ask again to go on' },
    }),
  },
  // --- node images (provisioning, issue 13) ---
  {
    $id: 'NodeImage',
    description: 'A node image: the kernel and the packed root file system (cpio.gz) a node boots, in the server\'s DATA/provision/images/<hex>.',
    ...obj({
      digest: { ...str, description: 'sha256:<hex> of the source\'s content identity with the kernel choice; the directory\'s name' },
      source: { ...str, description: 'the source image, canonical (docker://registry/repo:tag, oras://..., an absolute path)' },
      sourceDigest: { ...str, description: 'the source\'s own identity: manifest digest, SIF sha256, or the tree\'s hash' },
      dir: str,
      kernelVersion: str,
      kernelPath: str,
      rootfsPath: str,
      kernelSha256: str,
      rootfsSha256: str,
      kernelSize: int,
      rootfsSize: int,
      builtAt: ms,
    }),
  },
  {
    $id: 'NodeImageBuild',
    description: 'A node image built, or found unchanged (reused).',
    ...obj({
      digest: str,
      source: str,
      sourceDigest: str,
      dir: str,
      kernelVersion: str,
      kernelPath: str,
      rootfsPath: str,
      kernelSha256: str,
      rootfsSha256: str,
      kernelSize: int,
      rootfsSize: int,
      builtAt: ms,
      reused: { ...bool, description: 'the image was unchanged: nothing was built' },
      durationMs: int,
      log: { type: 'array', items: str, description: 'what the build said (the kernel taken, warnings)' },
    }),
  },
  {
    $id: 'NodeImageBuilding',
    description: 'A build still going on when the answer was due (202): ask again with the same body to wait on it.',
    ...obj({
      building: { type: 'boolean', const: true },
      source: str,
      startedAt: ms,
      log: { type: 'array', items: str },
    }),
  },
  {
    $id: 'Token',
    ...obj({
      id: str,
      kind: { type: 'string', enum: ['api', 'join'] },
      user: nullable(str),
      createdAt: ms,
      expiresAt: msOrNull,
      usesLeft: nullable(int),
    }),
  },
  { $id: 'User', ...obj({ name: str, unixUser: str, admin: bool, createdAt: ms }) },
  {
    $id: 'CaStatus',
    description: "the cluster's CAs and a CA rotation in progress (docs/mesh.md, CA rotation)",
    ...obj({
      trustDomain: str,
      phase: { type: 'string', enum: ['none', 'trust', 'issue'], description: 'none: no rotation; trust: the new CA is trusted beside the old one; issue: the new CA issues certificates, the old one is still trusted' },
      startedAt: msOrNull,
      phaseChangedAt: msOrNull,
      issueAfter: { ...msOrNull, description: 'the trust phase lasts at least until then (--trust-for)' },
      cas: {
        type: 'array',
        items: obj({
          fingerprint: { ...str, description: 'SHA-256, AB:CD:...' },
          subject: str,
          notBefore: ms,
          notAfter: ms,
          role: { type: 'string', enum: ['active', 'old', 'new'] },
          signing: { ...bool, description: 'it issues certificates now' },
        }),
      },
      nodes: {
        type: 'array',
        items: obj({
          name: str,
          state: { type: 'string', enum: ['ready', 'down', 'lost', 'revoked'] },
          ca: { type: 'string', enum: ['active', 'old', 'new', 'untrusted', 'unknown'], description: 'the CA its certificate is from' },
          trustsNew: { type: ['boolean', 'null'], description: 'during a rotation: it trusts the new CA (null: not known yet)' },
        }),
      },
      waitingFor: { type: 'array', items: str, description: 'the nodes the rotation waits for now' },
      next: { ...str, description: 'what happens next, in words' },
      lastRetiredAt: msOrNull,
      bundlePem: { ...str, description: "the trust bundle (PEM): what a client's CA file must hold now" },
    }),
  },
] as const satisfies readonly Record<string, unknown>[];

// WorkflowDetail = WorkflowSummary + its own fields.
{
  const summary = SHARED_SCHEMAS.find((s) => s.$id === 'WorkflowSummary') as unknown as { properties: Record<string, unknown>; required: string[] };
  const detail = SHARED_SCHEMAS.find((s) => s.$id === 'WorkflowDetail') as unknown as { properties: Record<string, unknown>; required: string[] };
  const own = {
    units: { type: 'array', items: { $ref: 'Unit#' } },
    attempts: { type: 'array', items: { $ref: 'Attempt#' } },
    events: { type: 'array', items: { $ref: 'Event#' } },
    waiting: { type: 'object', additionalProperties: str, description: 'per job: why it is waiting' },
    spec: { type: 'object', additionalProperties: true, description: 'the workflow as accepted (normalized: sizes in bytes, durations in seconds, task arrays as ranges; see src/workflow/types.ts)' },
    runDir: { ...str, description: 'its run directory (embedded: on this machine; cluster: the same path under each node\'s data directory)' },
    options: { type: 'object', additionalProperties: true, description: 'the run options it was submitted with (failFast, simulate)' },
    services: { type: 'array', items: { $ref: 'Service#' }, description: 'its services: state, node, address, ports, endpoints' },
  };
  Object.assign(detail.properties, summary.properties, own);
  detail.required.push(...summary.required, ...Object.keys(own));
}

export const ref = (id: string) => ({ $ref: `${id}#` }) as const;
export const arrayOf = (id: string) => ({ type: 'array', items: ref(id) }) as const;

/** The error responses every authenticated route can give (for the OpenAPI document). */
export const ERROR_RESPONSES = {
  '4xx': { description: 'the request was refused: see error.code (docs/errors/api.md)', ...ref('Error') },
  '5xx': { description: 'the server failed: see error.code', ...ref('Error') },
} as const;

export const idParams = obj({ id: { type: 'string', pattern: ID_PATTERN, description: 'a workflow id or a unique prefix of one' } });
export const nameParams = obj({ name: { type: 'string', pattern: NAME_PATTERN } });
