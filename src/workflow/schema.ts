// JSON Schema (draft-07) of the Fuzzfile format, printed by `warren schema` for editors and
// other tools. The validator in fuzzfile.ts is the reference (it also checks what a schema
// cannot: job references, cycles, volume names); every example must pass both. Pure.

const NAME = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$';
const DURATION = { description: 'seconds, or a duration like 90s, 15m, 2h30m, 1d', anyOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: '^\\s*(\\d+(\\.\\d+)?|((\\d+(\\.\\d+)?)(ms|s|m|h|d|w))+)\\s*$' }] };
const SIZE = { description: 'bytes, or a size like 512MB, 4GiB, 1.5G', anyOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*([bB]|[kKmMgGtTpP]([iI]?[bB]?)?)?\\s*$' }] };
const SCALAR = { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] };
const WORDS = { type: 'array', items: SCALAR };
const SECRET = { type: 'string', pattern: '^secret://\\S+$', description: 'a secret reference, e.g. secret://user/NAME' };

/** Case-insensitive enum as a pattern (JSON Schema has no case-insensitive enum). */
function ciEnum(words: readonly string[]): object {
  const alternatives = words.map((w) => [...w].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c)).join(''));
  return { type: 'string', pattern: `^(${alternatives.join('|')})$`, description: `one of ${words.join(', ')} (case-insensitive)` };
}

function obj(properties: Record<string, unknown>, required: string[] = [], description?: string): object {
  return { type: 'object', ...(description ? { description } : {}), properties, ...(required.length ? { required } : {}), additionalProperties: false };
}

function jobProperties(dialect: 'v1' | 'v4'): Record<string, unknown> {
  return {
    image: obj({ uri: { type: 'string', pattern: '^((docker|oras|file)://.+|/.*)$', description: 'docker://, oras://, file:// (a .sif file or a root file system directory) or an absolute path' }, secret: SECRET }, ['uri'], 'container image; absent = run on the host as a process'),
    command: { ...WORDS, minItems: 1, description: 'program and arguments (exclusive with script)' },
    script: { type: 'string', pattern: '^#!', description: 'a script starting with a #! line (exclusive with command)' },
    args: { ...WORDS, description: 'appended to the command' },
    env: {
      description: 'NAME=value strings, or a mapping',
      anyOf: [
        { type: 'array', items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*=' } },
        { type: 'object', propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$', not: { const: '__proto__' } }, additionalProperties: SCALAR },
      ],
    },
    cwd: { type: 'string', pattern: '^/' },
    mounts:
      dialect === 'v1'
        ? { type: 'object', description: 'keyed by volume name', additionalProperties: obj({ location: { type: 'string', pattern: '^/' }, 'read-only': { type: 'boolean' } }, ['location']) }
        : { type: 'object', description: 'keyed by absolute path', propertyNames: { pattern: '^/' }, additionalProperties: obj({ volume: { type: 'string', pattern: NAME }, 'read-only': { type: 'boolean' } }, ['volume']) },
    ...(dialect === 'v1'
      ? { requires: { type: 'array', items: { type: 'string', pattern: NAME }, description: 'jobs that must succeed first' } }
      : {
          'depends-on': {
            type: 'array',
            items: {
              anyOf: [
                { type: 'string', pattern: NAME },
                obj({ name: { type: 'string', pattern: NAME }, status: ciEnum(['SUCCEEDED', 'FINISHED', 'FAILED', 'RUNNING']) }, ['name']),
              ],
            },
          },
        }),
    resource: obj({
      cpu: obj({ cores: { type: 'integer', minimum: 1, default: 1 }, affinity: ciEnum(['core', 'socket', 'numa']), threads: { type: 'boolean', default: false } }),
      memory: obj({ size: SIZE, 'by-core': { type: 'boolean', default: false } }),
      devices: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 }, description: 'e.g. {"nvidia.com/gpu": 1}' },
      exclusive: { type: 'boolean', default: false },
    }),
    'task-array': obj({ start: { type: 'integer', minimum: 0, maximum: 4_000_000 }, end: { type: 'integer', minimum: 0, maximum: 4_000_000, description: 'inclusive' }, concurrency: { type: 'integer', minimum: 0, maximum: 4_000_001, default: 0, description: '0 = unlimited' } }, ['start', 'end']),
    multinode: obj({ nodes: { type: 'integer', minimum: 1 }, implementation: ciEnum(['openmpi', 'mpich', 'gasnet']) }, ['nodes']),
    policy: obj({
      timeout: obj({ execute: DURATION }),
      retry: obj({ attempts: { type: 'integer', minimum: 1, default: 1, description: 'total attempts' }, backoff: { ...DURATION, default: '1s' } }),
    }),
    estimate: { ...DURATION, description: 'expected run time (for planning)' },
  };
}

const SERVICE_KEYS = ['image', 'command', 'script', 'args', 'env', 'cwd', 'mounts', 'depends-on', 'resource'];

function endpoint(): object {
  return obj({ uri: { type: 'string', pattern: '^(?:[fF][iI][lL][eE]|[hH][tT][tT][pP][sS]?|[sS]3)://.+' }, secret: SECRET }, ['uri']);
}

function transfer(): object {
  return obj({ source: endpoint(), destination: endpoint(), sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' }, size: { ...SIZE, description: 'expected size of the content: a larger body is refused' } }, ['source', 'destination']);
}

function topLevel(dialect: 'v1' | 'v4'): object {
  // A job may take its command from defaults.job, so the schema only forbids both at once.
  const job = { type: 'object', properties: jobProperties(dialect), additionalProperties: false, not: { required: ['command', 'script'] } };
  const jobNoRun = { type: 'object', properties: jobProperties(dialect), additionalProperties: false };
  const props: Record<string, unknown> = {
    version: { const: dialect },
    name: { type: 'string', minLength: 1 },
    defaults: obj({ job: { ...jobNoRun, description: 'merged under every job' } }),
    volumes: {
      type: 'object',
      propertyNames: { pattern: NAME },
      additionalProperties: obj(
        {
          reference: { type: 'string', pattern: '^volume://user/(ephemeral|persistent/[A-Za-z0-9][A-Za-z0-9_.-]*)$' },
          ingress: { type: 'array', items: transfer() },
          egress: { type: 'array', items: transfer() },
        },
        ['reference'],
      ),
    },
    policy: obj({ deadline: DURATION, budget: { type: 'number', minimum: 0 }, timeout: DURATION, 'require-signed': { type: 'boolean' }, 'trusted-keys': { type: 'array', items: { type: 'string', minLength: 1 } } }),
    jobs: { type: 'object', minProperties: 1, propertyNames: { pattern: NAME }, additionalProperties: job },
  };
  if (dialect === 'v4') {
    const all = jobProperties('v4');
    const svc = Object.fromEntries(SERVICE_KEYS.map((k) => [k, all[k]]));
    props.services = { type: 'object', propertyNames: { pattern: NAME }, additionalProperties: { type: 'object', properties: svc, additionalProperties: false, oneOf: [{ required: ['command'] }, { required: ['script'] }] } };
  }
  return { type: 'object', properties: props, patternProperties: { '^x-': {} }, required: ['version', 'jobs'], additionalProperties: false };
}

/** The JSON Schema (draft-07) of a Fuzzfile (either dialect, chosen by `version`). */
export function workflowJsonSchema(): object {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Warren workflow (Fuzzfile v1 or v4)',
    description: 'A workflow: volumes, jobs and (v4) services. See docs/workflow-format.md.',
    type: 'object',
    required: ['version'],
    properties: { version: { enum: ['v1', 'v4'] } },
    if: { properties: { version: { const: 'v4' } } },
    then: topLevel('v4'),
    else: topLevel('v1'),
  };
}
