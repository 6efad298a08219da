// JSON Schema (draft-07) of the Fuzzfile format, printed by `warren schema` for editors and
// other tools. The validator in fuzzfile.ts is the reference (it also checks what a schema
// cannot: job references, cycles, volume names, port names, storage classes); every example
// must pass both. Pure.

const NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$';
const DURATION = { description: 'seconds, or a duration like 90s, 15m, 2h30m, 1d', anyOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: '^\\s*(\\d+(\\.\\d+)?|((\\d+(\\.\\d+)?)(ms|s|m|h|d|w))+)\\s*$' }] };
const SIZE = { description: 'bytes, or a size like 512MB, 4GiB, 1.5G', anyOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*([bB]|[kKmMgGtTpP]([iI]?[bB]?)?)?\\s*$' }] };
const SCALAR = { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] };
const WORDS = { type: 'array', items: SCALAR };
const SECRET = { type: 'string', pattern: '^secret://\\S+$', description: 'a secret reference, e.g. secret://user/NAME' };
const STRING_MAP = { type: 'object', additionalProperties: SCALAR };
const PORT = { type: 'integer', minimum: 1, maximum: 65535 };
const COUNT = (min: number): object => ({ type: 'integer', minimum: min, maximum: 2_147_483_647 });

/** Case-insensitive enum as a pattern (JSON Schema has no case-insensitive enum). */
function ciEnum(words: readonly string[]): object {
  const alternatives = words.map((w) => [...w].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c)).join(''));
  return { type: 'string', pattern: `^(${alternatives.join('|')})$`, description: `one of ${words.join(', ')} (case-insensitive)` };
}

function obj(properties: Record<string, unknown>, required: string[] = [], description?: string): object {
  return { type: 'object', ...(description ? { description } : {}), properties, ...(required.length ? { required } : {}), additionalProperties: false };
}

/** A list or mapping key may also be written with nothing after it (`env:`): empty. */
function orNull(s: object): object {
  return { anyOf: [s, { type: 'null' }] };
}

/** Two spellings of one key (YAML kebab-case and the API's camelCase): at most one of them. */
function notBoth(a: string, b: string): object {
  return { not: { required: [a, b] } };
}

function policy(backoff: boolean): object {
  return obj({
    timeout: obj({ execute: DURATION }),
    retry: obj({ attempts: { ...COUNT(1), default: 1, description: 'total attempts' }, ...(backoff ? { backoff: { ...DURATION, default: '1s' } } : {}) }),
  });
}

function probe(): object {
  const port = { anyOf: [PORT, { type: 'string', pattern: NAME, description: 'the name of a port of network.ports' }] };
  const timing = {
    'initial-delay-seconds': { ...COUNT(0), default: 0 },
    'period-seconds': { ...COUNT(1), default: 10 },
    'timeout-seconds': { ...COUNT(1), default: 1 },
    'success-threshold': { ...COUNT(1), default: 1 },
    'failure-threshold': { ...COUNT(1), default: 3 },
  };
  const actions: Record<string, object> = {
    'http-get': obj({ path: { type: 'string', pattern: '^/' }, port, scheme: ciEnum(['HTTP', 'HTTPS']), 'http-headers': orNull({ type: 'array', items: obj({ name: { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }, value: SCALAR }, ['name']) }) }, ['port']),
    'tcp-socket': obj({ port }, ['port']),
    exec: obj({ command: { ...WORDS, minItems: 1 } }, ['command']),
    grpc: obj({ port, service: { type: 'string' } }, ['port']),
  };
  return {
    type: 'object',
    description: 'exactly one of http-get, tcp-socket, exec, grpc; Kubernetes timing',
    properties: { ...actions, ...timing },
    additionalProperties: false,
    oneOf: Object.keys(actions).map((k) => ({ required: [k] })),
  };
}

function serviceNetwork(): object {
  return obj({
    host: { type: 'boolean', default: false },
    ports: orNull({ type: 'array', items: obj({ name: { type: 'string', pattern: NAME }, port: PORT, protocol: ciEnum(['tcp', 'udp']) }, ['name', 'port']) }),
    endpoints: orNull({
      type: 'array',
      items: obj(
        {
          name: { type: 'string', pattern: NAME },
          'port-name': { type: 'string', pattern: NAME },
          protocol: ciEnum(['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls']),
          type: ciEnum(['subdomain', 'path']),
          scope: ciEnum(['user', 'group', 'organization', 'public']),
        },
        ['name', 'port-name'],
      ),
    }),
  });
}

function jobNetwork(): object {
  const ports = orNull({ type: 'array', items: PORT });
  return { ...obj({ isolated: { type: 'boolean', default: false }, 'expose-tcp': ports, exposeTcp: ports, 'expose-udp': ports, exposeUdp: ports }), allOf: [notBoth('expose-tcp', 'exposeTcp'), notBoth('expose-udp', 'exposeUdp')] };
}

function jobProperties(dialect: 'v1' | 'v4', kind: 'job' | 'service'): Record<string, unknown> {
  const dep = {
    anyOf: [
      { type: 'string', pattern: NAME },
      obj({ name: { type: 'string', pattern: NAME }, status: ciEnum(['SUCCEEDED', 'FINISHED', 'ENDED', 'FAILED', 'RUNNING']), description: { type: 'string' } }, ['name']),
    ],
  };
  const props: Record<string, unknown> = {
    name: { type: 'string', description: 'ignored: the key names it (Fuzzball keeps the key here)' },
    description: { type: 'string' },
    annotations: orNull(STRING_MAP),
    image: {
      ...obj(
        {
          uri: { type: 'string', pattern: '^((docker|oras|file)://.+|/.*)$', description: 'docker://, oras://, file:// (a .sif file or a root file system directory) or an absolute path' },
          secret: SECRET,
          secrets: orNull(STRING_MAP),
          decryptionSecret: SECRET,
          'decryption-secret': SECRET,
          binds: { type: 'array', items: { type: 'string', pattern: '^/[^:]*(:/[^:]*(:(ro|rw))?)?$' }, description: 'paths of the node bound into the container: SRC[:DST[:ro|rw]] (Apptainer --bind)' },
          overlays: { type: 'array', items: { type: 'string', pattern: '^/[^:]*(:(ro|rw))?$' }, description: 'directories or squashfs images over the image: PATH[:ro]; at most one writable (Apptainer --overlay)' },
        },
        ['uri'],
        'container image; absent = run on the host as a process',
      ),
      ...notBoth('decryptionSecret', 'decryption-secret'),
    },
    command: { ...WORDS, minItems: 1, description: 'program and arguments (exclusive with script)' },
    script: { type: 'string', pattern: '^#!', description: 'a script starting with a #! line (exclusive with command)' },
    args: orNull({ ...WORDS, description: 'appended to the command' }),
    env: {
      description: 'NAME=value strings, or a mapping',
      anyOf: [
        { type: 'array', items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*=' } },
        { type: 'object', propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$', not: { const: '__proto__' } }, additionalProperties: SCALAR },
        { type: 'null' },
      ],
    },
    cwd: { type: 'string', pattern: '^/' },
    files: orNull({ type: 'object', description: 'absolute path in the job -> content, or file://NAME (a top-level file)', propertyNames: { pattern: '^/.*[^/]$' }, additionalProperties: { type: 'string' } }),
    mounts: orNull(
      dialect === 'v1'
        ? { type: 'object', description: 'keyed by volume name', additionalProperties: obj({ location: { type: 'string', pattern: '^/' }, 'read-only': { type: 'boolean' } }, ['location']) }
        : {
            type: 'object',
            description: 'keyed by absolute path; a volume name, or {volume, read-only}',
            propertyNames: { pattern: '^/' },
            additionalProperties: { anyOf: [{ type: 'string', pattern: NAME }, obj({ volume: { type: 'string', pattern: NAME }, 'read-only': { type: 'boolean' } }, ['volume'])] },
          },
    ),
    ...(dialect === 'v1' ? { requires: orNull({ type: 'array', items: { type: 'string', pattern: NAME }, description: 'jobs that must succeed first (services: be ready)' }) } : {}),
    'depends-on': orNull({ type: 'array', items: dep }),
    resource: obj({
      cpu: obj({ cores: { ...COUNT(1), default: 1 }, affinity: ciEnum(['core', 'socket', 'numa']), threads: { type: 'boolean', default: false }, sockets: COUNT(1) }),
      memory: { ...obj({ size: SIZE, 'by-core': { type: 'boolean', default: false }, byCore: { type: 'boolean' } }), ...notBoth('by-core', 'byCore') },
      devices: orNull({ type: 'object', additionalProperties: COUNT(0), description: 'e.g. {"nvidia.com/gpu": 1}' }),
      exclusive: { type: 'boolean', default: false },
      annotations: orNull(STRING_MAP),
    }),
    network: kind === 'service' ? serviceNetwork() : jobNetwork(),
    ...(kind === 'job'
      ? { 'task-array': obj({ start: { type: 'integer', minimum: 0, maximum: 4_000_000 }, end: { type: 'integer', minimum: 0, maximum: 4_000_000, description: 'inclusive' }, concurrency: { type: 'integer', minimum: 0, maximum: 4_000_001, default: 0, description: '0 = unlimited' } }, ['start', 'end']) }
      : {}),
    multinode: {
      ...obj({ nodes: COUNT(1), implementation: ciEnum(['openmpi', 'ompi', 'mpich']), 'procs-per-node': COUNT(1), procsPerNode: COUNT(1) }, ['nodes']),
      ...notBoth('procs-per-node', 'procsPerNode'),
    },
    policy: policy(true),
    ...(kind === 'job' ? { estimate: { ...DURATION, description: 'expected run time (for planning)' } } : {}),
    ...(kind === 'service' ? { persist: { type: 'boolean', default: false }, 'readiness-probe': probe() } : {}),
  };
  return props;
}

function endpoint(): object {
  return obj({ uri: { type: 'string', pattern: '^(?:[fF][iI][lL][eE]|[hH][tT][tT][pP][sS]?|[sS]3)://.+' }, secret: SECRET }, ['uri']);
}

function transfer(): object {
  return obj(
    { source: endpoint(), destination: endpoint(), sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' }, size: { ...SIZE, description: 'expected size of the content: a larger body is refused' }, policy: policy(false) },
    ['source', 'destination'],
  );
}

function volume(dialect: 'v1' | 'v4'): object {
  const reference = { type: 'string', pattern: '^volume://(user|account|group)/[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$', description: 'volume://SCOPE/CLASS[/NAME]; CLASS: ephemeral, persistent, or a class of the machine' };
  const data = { ingress: orNull({ type: 'array', items: transfer() }), egress: orNull({ type: 'array', items: transfer() }) };
  if (dialect === 'v1') {
    return { ...obj({ name: { type: 'string' }, reference, type: ciEnum(['EPHEMERAL']), ...data }), anyOf: [{ required: ['reference'] }, { required: ['type'] }] };
  }
  return {
    ...obj({ name: { type: 'string', pattern: NAME }, reference, use: { type: 'string', pattern: NAME, description: 'storage class: ephemeral, persistent, or a class of the machine' }, size: SIZE, annotations: orNull(STRING_MAP), ...data }),
    anyOf: [{ required: ['reference'] }, { required: ['use'] }, { required: ['name'] }, { required: ['size'] }, { required: ['annotations'] }],
    not: { required: ['reference', 'use'] },
  };
}

function topLevel(dialect: 'v1' | 'v4'): object {
  // A job may take its command from defaults.job, so the schema only forbids both at once.
  const job = { type: 'object', properties: jobProperties(dialect, 'job'), additionalProperties: false, not: { required: ['command', 'script'] } };
  const jobNoRun = { type: 'object', properties: jobProperties(dialect, 'job'), additionalProperties: false };
  const service = { type: 'object', properties: jobProperties(dialect, 'service'), additionalProperties: false, oneOf: [{ required: ['command'] }, { required: ['script'] }] };
  const props: Record<string, unknown> = {
    version: { const: dialect },
    name: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    annotations: orNull(STRING_MAP),
    files: orNull({ type: 'object', description: 'NAME -> content; jobs and ingress refer to them as file://NAME', propertyNames: { minLength: 1, not: { pattern: '^/|(^|/)\\.\\.(/|$)' } }, additionalProperties: { type: ['string', 'null'] } }),
    defaults: orNull(obj({ job: orNull({ ...jobNoRun, description: 'merged under every job' }) })),
    volumes: orNull({ type: 'object', propertyNames: { pattern: NAME }, additionalProperties: volume(dialect) }),
    policy: obj({ deadline: DURATION, budget: { type: 'number', minimum: 0 }, timeout: { oneOf: [DURATION, obj({ execute: DURATION })] }, 'require-signed': { type: 'boolean' }, 'trusted-keys': { type: 'array', items: { type: 'string', minLength: 1 } } }),
    jobs: orNull({ type: 'object', propertyNames: { pattern: NAME }, additionalProperties: job }),
    services: orNull({ type: 'object', propertyNames: { pattern: NAME }, additionalProperties: service }),
  };
  return {
    type: 'object',
    properties: props,
    patternProperties: { '^x-': {} },
    required: ['version'],
    // At least one job or service.
    anyOf: [
      { required: ['jobs'], properties: { jobs: { type: 'object', minProperties: 1 } } },
      { required: ['services'], properties: { services: { type: 'object', minProperties: 1 } } },
    ],
    additionalProperties: false,
  };
}

/** The JSON Schema (draft-07) of a Fuzzfile (either dialect, chosen by `version`). */
export function workflowJsonSchema(): object {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Warren workflow (Fuzzfile v1 or v4)',
    description: 'A workflow: volumes, jobs and services. See docs/workflow-format.md.',
    type: 'object',
    required: ['version'],
    properties: { version: { enum: ['v1', 'v4'] } },
    if: { properties: { version: { const: 'v4' } } },
    then: topLevel('v4'),
    else: topLevel('v1'),
  };
}
