// Limits on what a workflow may ask for, checked at validation so that nothing later (the
// engine's task list, file names under $WARREN_HOME, the launcher's argv and environment)
// meets a value it cannot handle. Documented in docs/workflow-format.md#limits. Pure.

/** Largest task-array index (Slurm's largest MaxArraySize is 4,000,001: indices 0..4,000,000). */
export const MAX_TASK_INDEX = 4_000_000;
/** Largest value of any other count (cores, nodes, attempts, device counts, concurrency): a C int. */
export const MAX_COUNT = 2_147_483_647;
/** Longest job, service or volume name, in bytes (it becomes a file name component: <= 255 bytes with suffixes). */
export const MAX_NAME_BYTES = 128;
/** Longest environment variable name, in bytes. */
export const MAX_ENV_NAME_BYTES = 255;
/** Longest path (cwd, mount location, path inside a volume), in bytes, and longest component (Linux PATH_MAX, NAME_MAX). */
export const MAX_PATH_BYTES = 4095;
export const MAX_PATH_COMPONENT_BYTES = 255;

export const NAME_RULE = `names start with a letter or digit, contain only letters, digits, "_", "." and "-", and are at most ${MAX_NAME_BYTES} bytes long`;
export const ENV_NAME_RULE = `environment variable names start with a letter or "_", contain only letters, digits and "_", are at most ${MAX_ENV_NAME_BYTES} bytes long, and are not "__proto__"`;
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Thousands separators for limits in messages: 4,000,000. */
export function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}

/** Why `name` is not a valid job/service/volume name, or undefined when it is. */
export function badName(name: string, re: RegExp): string | undefined {
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `is ${Buffer.byteLength(name, 'utf8')} bytes long, longer than the limit of ${MAX_NAME_BYTES}`;
  if (name === '') return 'is empty';
  if (!/^[A-Za-z0-9]/.test(name)) return 'does not start with a letter or digit';
  if (!re.test(name)) return 'has characters other than letters, digits, "_", "." and "-"';
  return undefined;
}

/** Why `name` is not a valid environment variable name, or undefined when it is. */
export function badEnvName(name: string): string | undefined {
  if (name === '__proto__') return 'is reserved (it would replace the prototype of the environment object)';
  if (Buffer.byteLength(name, 'utf8') > MAX_ENV_NAME_BYTES) return `is longer than the limit of ${MAX_ENV_NAME_BYTES} bytes`;
  if (!ENV_NAME_RE.test(name)) return 'is not a valid name';
  return undefined;
}

/** Why absolute or relative path `p` cannot be a Linux path, or undefined. */
export function badPath(p: string): string | undefined {
  const n = Buffer.byteLength(p, 'utf8');
  if (n > MAX_PATH_BYTES) return `is ${n} bytes long, longer than the limit of ${MAX_PATH_BYTES}`;
  for (const c of p.split('/')) {
    const m = Buffer.byteLength(c, 'utf8');
    if (m > MAX_PATH_COMPONENT_BYTES) return `has a component of ${m} bytes ("${c.slice(0, 20)}..."), longer than the limit of ${MAX_PATH_COMPONENT_BYTES}`;
  }
  return undefined;
}

const LONE_SURROGATE = /\p{Cs}/u;

/** A problem with the characters of a string: a NUL or an unpaired UTF-16 surrogate. */
export function badChars(s: string): string | undefined {
  const nul = s.indexOf('\0');
  if (nul >= 0) return `contains a NUL character (\\0) at offset ${nul}`;
  const m = LONE_SURROGATE.exec(s);
  if (m) return `contains an unpaired surrogate \\u${m[0].charCodeAt(0).toString(16)} at offset ${m.index}, which is not valid UTF-8 text`;
  return undefined;
}

export const CHARS_HINT = 'NUL characters and unpaired surrogates cannot be passed to a program (argv, environment and paths are NUL-terminated UTF-8 strings): remove the "\\0" / "\\x00" / "\\u0000" or lone "\\uD800"-style escape';

export type DocPath = (string | number)[];
interface Frame {
  v: unknown;
  parent: Frame | null;
  seg: string | number;
}
function pathOf(f: Frame): DocPath {
  const out: DocPath = [];
  for (let x: Frame | null = f; x && x.parent; x = x.parent) out.push(x.seg);
  return out.reverse();
}

/**
 * Every string (mapping keys included) in a parsed document with a NUL or an unpaired
 * surrogate, with its path. Iterative (deep documents do not overflow the stack); at most
 * `limit` findings.
 */
export function findBadStrings(root: unknown, limit = 50): { path: DocPath; onKey: boolean; why: string }[] {
  const out: { path: DocPath; onKey: boolean; why: string }[] = [];
  const stack: Frame[] = [{ v: root, parent: null, seg: '' }];
  const seen = new Set<object>();
  while (stack.length > 0 && out.length < limit) {
    const f = stack.pop()!;
    const v = f.v;
    if (typeof v === 'string') {
      const why = badChars(v);
      if (why) out.push({ path: pathOf(f), onKey: false, why });
    } else if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) continue; // YAML aliases share objects
      seen.add(v);
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], parent: f, seg: i });
      } else {
        const keys = Object.keys(v);
        for (let i = keys.length - 1; i >= 0; i--) {
          const k = keys[i]!;
          const child: Frame = { v: (v as Record<string, unknown>)[k], parent: f, seg: k };
          const why = badChars(k);
          if (why) out.push({ path: pathOf(child), onKey: true, why: `key ${why}` });
          stack.push(child);
        }
      }
    }
  }
  return out;
}
