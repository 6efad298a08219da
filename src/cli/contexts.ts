// CLI contexts: the Warren servers this CLI talks to, each a URL, a bearer token and
// optionally the CA that issued the server's certificate. They live in
// `$XDG_CONFIG_HOME/warren/contexts.json` (default `~/.config/warren/contexts.json`),
// written atomically (a temporary file renamed over it) with mode 0600 in a 0700 directory:
// it holds tokens. `resolveTarget` says where a command goes: `--local` (this machine)
// > `--context NAME` > `WARREN_CONTEXT` > the file's current context > this machine.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, chmodSync, unlinkSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { WarrenError, didYouMean } from '../common/index.js';
import { checkServerUrl } from '../api/index.js';

export interface ServerContext {
  /** https://HOST[:PORT][/PREFIX] */
  server: string;
  token: string;
  /** Absolute path of the CA certificate (PEM) that issued the server's certificate. */
  ca?: string;
}

export interface ContextsFile {
  current: string | null;
  contexts: Record<string, ServerContext>;
}

export type Target = { kind: 'embedded' } | { kind: 'server'; name: string; url: string; token: string; caPem?: string };

export interface TargetOptions {
  context?: string;
  local?: boolean;
}

/** A context's name: letters, digits, `.`, `-`, `_`. */
export const CONTEXT_NAME = /^[A-Za-z0-9._-]{1,64}$/;

const ADD_HINT = 'warren context add NAME --server https://HOST:PORT --token TOKEN [--ca ca.pem]';

/** Where the contexts are kept. A relative XDG_CONFIG_HOME is ignored (XDG Base Directory spec). */
export function contextsPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.config');
  return join(base, 'warren', 'contexts.json');
}

/** The contexts file (empty when there is none). */
export function readContexts(env: NodeJS.ProcessEnv = process.env): ContextsFile {
  const path = contextsPath(env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { current: null, contexts: {} };
    throw new WarrenError('CLI_CONTEXTS_INVALID', `cannot read ${path}: ${(e as Error).message}`, {
      hint: 'check its permissions (it should be yours, mode 0600)',
      cause: e,
    });
  }
  const bad = (what: string): WarrenError =>
    new WarrenError('CLI_CONTEXTS_INVALID', `${path}: ${what}`, {
      hint: `fix the file, or move it aside and add the contexts again: ${ADD_HINT}`,
      details: { path },
    });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad('not a JSON object');
  const o = v as { current?: unknown; contexts?: unknown };
  if (o.current !== null && o.current !== undefined && typeof o.current !== 'string') throw bad('"current" is neither a name nor null');
  if (o.contexts !== undefined && (typeof o.contexts !== 'object' || o.contexts === null || Array.isArray(o.contexts))) throw bad('"contexts" is not an object');
  const contexts: Record<string, ServerContext> = {};
  for (const [name, c] of Object.entries((o.contexts ?? {}) as Record<string, unknown>)) {
    if (!CONTEXT_NAME.test(name)) throw bad(`context name "${name}" is not letters, digits, ".", "-", "_"`);
    const e = c as Partial<Record<keyof ServerContext, unknown>> | null;
    if (!e || typeof e !== 'object' || typeof e.server !== 'string' || typeof e.token !== 'string' || (e.ca !== undefined && typeof e.ca !== 'string')) {
      throw bad(`context "${name}" needs "server" and "token" (strings) and at most a "ca" path`);
    }
    contexts[name] = { server: e.server, token: e.token, ...(e.ca !== undefined ? { ca: e.ca as string } : {}) };
  }
  return { current: typeof o.current === 'string' ? o.current : null, contexts };
}

/** Write the contexts file: 0600 in a 0700 directory, all or nothing. */
export function writeContexts(f: ContextsFile, env: NodeJS.ProcessEnv = process.env): void {
  const path = contextsPath(env);
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tmp = join(dir, `.contexts.json.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const sorted: ContextsFile = { current: f.current, contexts: Object.fromEntries(Object.keys(f.contexts).sort().map((k) => [k, f.contexts[k]!])) };
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(sorted, null, 2) + '\n');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // closed already
    }
    try {
      unlinkSync(tmp);
    } catch {
      // not there
    }
    throw e;
  }
}

function checkName(name: string): void {
  if (!CONTEXT_NAME.test(name)) {
    throw new WarrenError('CLI_BAD_OPTION', `"${name}" is not a context name`, { hint: 'use letters, digits, ".", "-" and "_" (at most 64), e.g. prod or hpc-1' });
  }
}

/** The PEM text of a CA file (read now, to fail early). */
export function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    throw new WarrenError('CLI_CONTEXT_CA', `cannot read the CA certificate ${path}: ${(e as Error).message}`, {
      hint: "give the path of the server's CA certificate (PEM); a Warren server's cluster CA is ca.crt in its directory",
      cause: e,
    });
  }
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(pem)) {
    throw new WarrenError('CLI_CONTEXT_CA', `${path} holds no PEM certificate`, {
      hint: 'give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----), not a key or DER file',
    });
  }
  return pem;
}

function unknown(name: string, from: string, f: ContextsFile, env: NodeJS.ProcessEnv): WarrenError {
  const names = Object.keys(f.contexts).sort();
  const guess = didYouMean(name, names);
  const hint =
    names.length === 0
      ? `there are no contexts yet: ${ADD_HINT}; or --local to use this machine`
      : `${guess ? `did you mean "${guess}"? ` : ''}known contexts: ${names.join(', ')} (warren context list); or --local to use this machine`;
  return new WarrenError('CLI_UNKNOWN_CONTEXT', `no context "${name}" (${from}) in ${contextsPath(env)}`, { hint, details: { name, known: names } });
}

/** Add (or replace) a context. The URL's shape and the CA file are checked now. */
export function addContext(name: string, o: { server: string; token: string; ca?: string }, env: NodeJS.ProcessEnv = process.env): { replaced: boolean; context: ServerContext } {
  checkName(name);
  const u = checkServerUrl(o.server);
  const server = u.origin + u.pathname.replace(/\/+$/, '');
  if (!o.token || /\s/.test(o.token)) {
    throw new WarrenError('CLI_BAD_OPTION', '--token is empty or has spaces in it', { hint: 'give the token exactly as the server (`warren user add`) printed it' });
  }
  const entry: ServerContext = { server, token: o.token };
  if (o.ca !== undefined) {
    const abs = resolve(o.ca);
    readCaFile(abs);
    entry.ca = abs;
  }
  const f = readContexts(env);
  const replaced = name in f.contexts;
  f.contexts[name] = entry;
  writeContexts(f, env);
  return { replaced, context: entry };
}

/** Make a context the current one. */
export function useContext(name: string, env: NodeJS.ProcessEnv = process.env): ServerContext {
  const f = readContexts(env);
  const c = f.contexts[name];
  if (!c) throw unknown(name, 'warren context use', f, env);
  f.current = name;
  writeContexts(f, env);
  return c;
}

/** Remove a context (the current one too: then none is current). */
export function removeContext(name: string, env: NodeJS.ProcessEnv = process.env): { wasCurrent: boolean } {
  const f = readContexts(env);
  if (!f.contexts[name]) throw unknown(name, 'warren context remove', f, env);
  delete f.contexts[name];
  const wasCurrent = f.current === name;
  if (wasCurrent) f.current = null;
  writeContexts(f, env);
  return { wasCurrent };
}

/** The contexts without their tokens, sorted by name. */
export function listContexts(env: NodeJS.ProcessEnv = process.env): Array<{ name: string; server: string; ca: string | null; current: boolean }> {
  const f = readContexts(env);
  return Object.keys(f.contexts)
    .sort()
    .map((name) => ({ name, server: f.contexts[name]!.server, ca: f.contexts[name]!.ca ?? null, current: f.current === name }));
}

/**
 * Where a command goes: `--local` > `--context NAME` > `WARREN_CONTEXT` > the contexts file's
 * current context > this machine (the embedded store). A named context that does not exist
 * is CLI_UNKNOWN_CONTEXT; its CA file is read here.
 */
export function resolveTarget(opts: TargetOptions, env: NodeJS.ProcessEnv = process.env): Target {
  if (opts.local) return { kind: 'embedded' };
  let name: string | undefined;
  let from = '';
  if (opts.context !== undefined) {
    name = opts.context;
    from = '--context';
  } else if (env.WARREN_CONTEXT) {
    name = env.WARREN_CONTEXT;
    from = 'WARREN_CONTEXT';
  }
  if (name === undefined && !existsSync(contextsPath(env))) return { kind: 'embedded' };
  const f = readContexts(env);
  if (name === undefined) {
    if (f.current === null) return { kind: 'embedded' };
    name = f.current;
    from = 'the current context';
  }
  const c = f.contexts[name];
  if (!c) throw unknown(name, from, f, env);
  const t: Target = { kind: 'server', name, url: c.server, token: c.token };
  if (c.ca !== undefined) t.caPem = readCaFile(c.ca);
  return t;
}

/**
 * Add `--context NAME` and `--local` to a command that can run here or on a server (run,
 * status, logs, cancel, resume, list); `resolveTarget(cmd.opts())` then says where it goes.
 */
export function addTargetOptions(cmd: Command): Command {
  return cmd
    .option('--context <name>', 'talk to the server of this context (`warren context list`); default: $WARREN_CONTEXT, then the current context')
    .option('--local', 'use this machine (the embedded store), whatever the context');
}
