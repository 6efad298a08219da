// Instances (`warren instance start|list|stop`, `warren exec instance://NAME`): an ad-hoc
// container kept in the background, in its own PID namespace, running the image's
// %startscript. Each instance has a supervisor: a detached Warren process (its own session,
// so it survives the shell that started it) that runs the container in the foreground with
// runc and removes everything (bundle, mounts, the record) when the container ends, whether
// by `stop` or on its own. The record is $WARREN_HOME/instances/NAME/record.json; the
// container id carries the supervisor's pid, so when a supervisor is killed the next Warren
// sweeps its container (runtime sweep.ts) and its record (here).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarrenError, pidAlive } from '../../common/index.js';
import { defaultToolPath, findExecutable, runTool, type AdhocRequest } from '../../runtime/container/index.js';
import { decryptionOf, prepareAdhocImage } from './adhoc.js';
import { nodePolicy } from '../policy.js';

export interface InstanceRecord {
  name: string;
  image: string;
  /** The supervisor's pid. */
  pid: number;
  /** The container's first process (pid on this machine). */
  containerPid: number;
  cid: string;
  runcRoot: string;
  startedAt: string;
  logs: { stdout: string; stderr: string };
  uid: number;
  gid: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function instancesDir(home: string): string {
  return join(home, 'instances');
}

function checkName(name: string): void {
  if (!NAME.test(name)) {
    throw new WarrenError('INSTANCE_BAD_NAME', `"${name}" is not a valid instance name`, { hint: 'use letters, digits, dots, dashes and underscores (at most 63), starting with a letter or digit' });
  }
}

function readRecord(dir: string): InstanceRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'record.json'), 'utf8')) as InstanceRecord;
  } catch {
    return undefined;
  }
}

/** runc as the runtime finds it (PATH, then the sbin directories). */
export function runcOf(): string {
  return findExecutable('runc', defaultToolPath()) ?? 'runc';
}

const runc = (args: string[], timeoutMs = 10_000) => runTool(runcOf(), args, timeoutMs);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * An instance directory whose supervisor is gone: its container (if runc still has it) is
 * removed; the runtime's sweep removes the bundle and mounts at the next ad-hoc start.
 */
async function sweepInstance(dir: string, rec: InstanceRecord | undefined): Promise<void> {
  if (rec && existsSync(join(rec.runcRoot, rec.cid))) await runc(['--root', rec.runcRoot, 'delete', '-f', rec.cid], 30_000);
  rmSync(dir, { recursive: true, force: true });
}

/** A record whose supervisor runs; stale ones are swept on the way. */
async function liveRecord(home: string, name: string): Promise<InstanceRecord | undefined> {
  const dir = join(instancesDir(home), name);
  const rec = readRecord(dir);
  if (rec && pidAlive(rec.pid)) return rec;
  if (rec) await sweepInstance(dir, rec);
  return undefined;
}

export async function listInstances(home: string): Promise<InstanceRecord[]> {
  let names: string[];
  try {
    names = readdirSync(instancesDir(home));
  } catch {
    return [];
  }
  const out: InstanceRecord[] = [];
  for (const n of names.sort()) {
    if (!NAME.test(n)) continue;
    const r = await liveRecord(home, n);
    if (r) out.push(r);
  }
  return out;
}

/** The supervisor's entry: dist/src/agent/instance-main.js. */
function supervisorScript(): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'instance-main.js');
}

export interface StartInstanceOptions {
  home: string;
  name: string;
  imageArg: string;
  args: string[];
  /** The container options (adhocRequestOf). */
  request: Record<string, unknown>;
  cwd: string;
  /** How long to wait for the container to run (default 30 s). */
  timeoutMs?: number;
}

export async function startInstance(o: StartInstanceOptions): Promise<InstanceRecord> {
  checkName(o.name);
  const dir = join(instancesDir(o.home), o.name);
  // A record whose supervisor is gone is swept here (its directory with it).
  const existing = await liveRecord(o.home, o.name);
  if (existing) {
    throw new WarrenError('INSTANCE_NAME_IN_USE', `an instance named ${o.name} is running already (pid ${existing.pid}, image ${existing.image})`, {
      hint: `choose another name, or stop it first: \`warren instance stop ${o.name}\``,
    });
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // One start at a time per name: the `starting` file is created exclusively.
  const lock = join(dir, 'starting');
  try {
    const fd = openSync(lock, 'wx');
    writeFileSync(fd, String(process.pid));
    closeSync(fd);
  } catch {
    let holder = 0;
    try {
      holder = Number(readFileSync(lock, 'utf8'));
    } catch {
      /* removed meanwhile */
    }
    if (pidAlive(holder)) {
      throw new WarrenError('INSTANCE_NAME_IN_USE', `an instance named ${o.name} is being started by process ${holder}`, { hint: `choose another name, or wait and see \`warren instance list\`` });
    }
    writeFileSync(lock, String(process.pid));
  }
  try {
    // The image is checked here, so a missing or untrusted image is this command's error.
    const { key, passphraseEnv, ...request } = o.request as { key?: string; passphraseEnv?: string };
    const decryption = await decryptionOf({ ...(key !== undefined ? { key } : {}), ...(passphraseEnv !== undefined ? { passphraseEnv } : {}) });
    const policy = nodePolicy(o.home);
    const image = await prepareAdhocImage(o.home, o.imageArg, o.cwd, policy);
    const logDir = join(instancesDir(o.home), 'logs');
    mkdirSync(logDir, { recursive: true, mode: 0o700 });
    const logs = { stdout: join(logDir, `${o.name}.out`), stderr: join(logDir, `${o.name}.err`) };
    rmSync(join(dir, 'failed.json'), { force: true });
    const job = {
      name: o.name,
      dir,
      logs,
      // The key, if any, goes to the supervisor through the pipe below, never into a file.
      request: { ...request, ...(decryption ? { decryption } : {}), image, action: 'start', args: o.args, cwd: o.cwd, stateDir: join(o.home, 'containers'), allowSetuid: policy.allowSetuid },
      image: o.imageArg,
    };
    const err = openSync(logs.stderr, 'w', 0o600);
    const child = spawn(process.execPath, [supervisorScript()], { detached: true, stdio: ['pipe', 'ignore', err], cwd: o.cwd, env: process.env });
    closeSync(err);
    // The request (with --env values) goes through a pipe, never into a file.
    child.stdin!.end(JSON.stringify(job));
    child.unref();
    const deadline = Date.now() + (o.timeoutMs ?? 30_000);
    for (;;) {
      const rec = readRecord(dir);
      if (rec) return rec;
      if (existsSync(join(dir, 'failed.json')) || child.exitCode !== null || !pidAlive(child.pid ?? -1)) {
        await sleep(20);
        const f = (() => {
          try {
            return JSON.parse(readFileSync(join(dir, 'failed.json'), 'utf8')) as { code?: string; message: string; hint?: string; status?: number };
          } catch {
            return undefined;
          }
        })();
        rmSync(join(dir, 'failed.json'), { force: true });
        const tail = (() => {
          try {
            return readFileSync(logs.stderr, 'utf8').trim().split('\n').slice(-5).join('\n');
          } catch {
            return '';
          }
        })();
        if (f?.code && f.code !== 'INSTANCE_START_FAILED') throw new WarrenError(f.code as never, f.message, f.hint ? { hint: f.hint } : {});
        throw new WarrenError('INSTANCE_START_FAILED', `instance ${o.name} ended as it started${f?.status !== undefined ? ` (exit status ${f.status})` : ''}${tail ? `:\n${tail}` : ''}`, {
          hint: `see its log ${logs.stderr}; its %startscript must keep running (start a service in the background and wait, or exec a server)`,
        });
      }
      if (Date.now() > deadline) {
        if (child.pid) process.kill(child.pid, 'SIGTERM');
        throw new WarrenError('INSTANCE_START_FAILED', `instance ${o.name} did not start within ${Math.round((o.timeoutMs ?? 30_000) / 1000)} s`, { hint: `see its log ${logs.stderr}` });
      }
      await sleep(20);
    }
  } finally {
    rmSync(lock, { force: true });
    // Nothing is left of a start that failed: no record, no directory.
    if (!existsSync(join(dir, 'record.json'))) rmSync(dir, { recursive: true, force: true });
  }
}

/** Stop one instance (or all): SIGTERM to its container, SIGKILL after `graceMs`; waits for its supervisor's cleanup. */
export async function stopInstances(home: string, o: { name?: string; graceMs: number }): Promise<string[]> {
  let targets: InstanceRecord[];
  if (o.name !== undefined) {
    checkName(o.name);
    const r = await liveRecord(home, o.name);
    if (!r) {
      throw new WarrenError('INSTANCE_UNKNOWN', `no instance named ${o.name} is running`, { hint: 'see the running ones with `warren instance list`' });
    }
    targets = [r];
  } else targets = await listInstances(home);
  await Promise.all(targets.map((r) => stopOne(home, r, o.graceMs)));
  return targets.map((r) => r.name);
}

async function stopOne(home: string, r: InstanceRecord, graceMs: number): Promise<void> {
  const dir = join(instancesDir(home), r.name);
  const gone = async (ms: number): Promise<boolean> => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (!pidAlive(r.pid)) return true;
      await sleep(25);
    }
    return !pidAlive(r.pid);
  };
  if (graceMs > 0) {
    await runc(['--root', r.runcRoot, 'kill', r.cid, 'TERM']);
    if (await gone(graceMs)) return sweepInstance(dir, readRecord(dir));
  }
  await runc(['--root', r.runcRoot, 'kill', '--all', r.cid, 'KILL']);
  if (await gone(10_000)) return sweepInstance(dir, readRecord(dir));
  // The supervisor does not clean up: end it, then remove the container ourselves.
  try {
    process.kill(r.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  await sweepInstance(dir, r);
}

export interface ExecInInstanceOptions {
  home: string;
  name: string;
  action: 'exec' | 'shell';
  args: string[];
  request: Record<string, unknown>;
  onWarning?: (m: string) => void;
}

/** `warren exec|shell instance://NAME ...`: a process in the instance's namespaces, as its user. */
export async function execInInstance(o: ExecInInstanceOptions): Promise<number> {
  checkName(o.name);
  const r = await liveRecord(o.home, o.name);
  if (!r) throw new WarrenError('INSTANCE_UNKNOWN', `no instance named ${o.name} is running`, { hint: 'see the running ones with `warren instance list`, or start it with `warren instance start IMAGE NAME`' });
  const req = o.request as Partial<AdhocRequest>;
  const rootOf = `/proc/${r.containerPid}/root`;
  const inside = (p: string): boolean => existsSync(join(rootOf, p));
  let argv = o.args;
  if (o.action === 'shell') argv = [inside('bin/bash') ? '/bin/bash' : '/bin/sh', ...o.args];
  if (!argv.length) throw new WarrenError('CLI_BAD_OPTION', 'warren exec needs a command after the instance', { hint: `e.g. warren exec instance://${o.name} ps` });
  // The image's environment scripts, as in the instance itself.
  if (inside('bin/sh') && inside('.singularity.d/env')) {
    argv = ['/bin/sh', '-c', 'for f in /.singularity.d/env/*.sh; do [ -f "$f" ] && . "$f"; done; exec "$@"', 'sh', ...argv];
  }
  const args = ['--root', r.runcRoot];
  if ((process.getuid?.() ?? 0) !== 0) args.push('--rootless', 'true');
  args.push('exec');
  for (const [k, v] of (req.env as [string, string][] | undefined) ?? []) args.push('--env', `${k}=${v}`);
  if (o.action === 'shell') args.push('--env', 'PS1=Warren> ');
  if (typeof req.pwd === 'string') args.push('--cwd', req.pwd);
  args.push(r.cid, '/.warren/init', String(r.uid), String(r.gid), ...argv);
  const child = spawn(runcOf(), args, { stdio: 'inherit' });
  const onSig = (s: NodeJS.Signals) => () => {
    if (!(s === 'SIGINT' && process.stdin.isTTY)) child.kill(s);
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const hs = sigs.map((s) => [s, onSig(s)] as const);
  for (const [s, h] of hs) process.on(s, h);
  try {
    return await new Promise<number>((resolve) => {
      child.on('error', () => resolve(255));
      child.on('exit', (code, sig) => resolve(code ?? (sig === 'SIGKILL' ? 137 : 143)));
    });
  } finally {
    for (const [s, h] of hs) process.off(s, h);
  }
}

/** Written by the supervisor: the record, atomically. */
export function writeRecord(dir: string, rec: InstanceRecord): void {
  const tmp = join(dir, `.record-${process.pid}`);
  writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
  renameSync(tmp, join(dir, 'record.json'));
}

/** Written by the supervisor when the container could not start or ended at once. */
export function writeFailure(dir: string, f: { code?: string; message: string; hint?: string; status?: number }): void {
  writeFileSync(join(dir, 'failed.json'), JSON.stringify(f), { mode: 0o600 });
}
