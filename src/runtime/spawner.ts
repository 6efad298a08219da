// Client of warren-spawn (src/runtime/spawner/warren-spawn.c), the small launcher that
// starts host jobs with fork()+execve() off Node's event-loop thread. Built by
// scripts/setup.sh into dist/bin/warren-spawn; when it is missing (or WARREN_SPAWNER=node)
// the process runtime falls back to child_process.spawn. Both pass the same runtime
// contract suite.
//
// The protocol is length-prefixed (see the C file): a NUL or newline in a value can never
// shift the framing. Values with a NUL cannot reach execve at all, so spawn() refuses them.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarrenError } from '../common/index.js';

export interface SpawnCallbacks {
  /** The process exists (in its cgroups, logs open, in its cwd); held ones wait for go(). */
  started(pid: number, created: { stdout: boolean; stderr: boolean }): void;
  /** Could not start; no exit follows. */
  failed(message: string, errno: string, stage: string): void;
  /** A held process, released by go(), could not exec its command (its exit follows). */
  execFailed?(errno: string): void;
  /** cpuMs: CPU time of the process and the children it waited for (wait4). */
  exited(exitCode: number | null, signal: NodeJS.Signals | null, cpuMs?: number): void;
}

export interface SpawnRequest {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  stdoutPath: string;
  stderrPath: string;
  /** Hold the process before exec until go() (abort() ends it unexec'd). */
  hold?: boolean;
  /** cgroup directories (absolute) the process joins before anything else. */
  cgroups?: string[];
  /** Run as this identity (the launcher must be root): groups, gid, then uid are set before chdir and exec. */
  credentials?: { uid: number; gid: number; groups: number[] };
}

const signalNames = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([k, v]) => [v as number, k as NodeJS.Signals]));
const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

/** dist/bin/warren-spawn, next to the compiled sources. */
export function spawnerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/src/runtime
  return join(here, '..', '..', 'bin', 'warren-spawn');
}

/**
 * A launch request that cannot be passed to execve as given: a NUL byte inside an argument,
 * an environment name or value, the cwd or a log path (C strings end at NUL), or an
 * environment name that is empty or holds '='. Returns what is wrong, or null.
 */
export function requestDefect(req: { argv: string[]; env: Record<string, string>; cwd: string; stdoutPath: string; stderrPath: string }): string | null {
  if (req.argv.length === 0) return 'the command is empty';
  for (let i = 0; i < req.argv.length; i++) if (req.argv[i]!.includes('\0')) return `argument ${i} of the command contains a NUL byte`;
  for (const [k, v] of Object.entries(req.env)) {
    if (k === '' || k.includes('=') || k.includes('\0')) return `environment variable name ${JSON.stringify(k)} is empty or contains '=' or a NUL byte`;
    if (v.includes('\0')) return `the value of environment variable ${k} contains a NUL byte`;
  }
  if (req.cwd.includes('\0')) return 'the working directory contains a NUL byte';
  if (req.stdoutPath.includes('\0') || req.stderrPath.includes('\0')) return 'a log file path contains a NUL byte';
  return null;
}

export function nulError(defect: string): WarrenError {
  return new WarrenError('RUNTIME_BAD_REQUEST', `cannot start the job: ${defect}`, {
    hint: 'a process cannot receive a NUL byte in its arguments or environment: remove it from the workflow (command, args, env)',
  });
}

/** Appends length-prefixed fields to one frame. */
class FrameWriter {
  private readonly parts: Buffer[] = [];
  private len = 0;
  constructor(op: string) {
    this.push(Buffer.from(op, 'latin1'));
  }
  private push(b: Buffer): void {
    this.parts.push(b);
    this.len += b.length;
  }
  u32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(n >>> 0, 0);
    this.push(b);
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.u32(b.length);
    this.push(b);
    return this;
  }
  strs(v: string[]): this {
    this.u32(v.length);
    for (const s of v) this.str(s);
    return this;
  }
  done(): Buffer {
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE(this.len, 0);
    return Buffer.concat([head, ...this.parts], 4 + this.len);
  }
}

export class Spawner {
  private static instance: Spawner | null | undefined;
  private static hooked = false;
  private child: ChildProcess | null = null;
  private closing: Promise<void> | null = null;
  private buf = '';
  private nextId = 1;
  private readonly pendingStart = new Map<string, SpawnCallbacks>();
  /** Started, by pid: the callbacks and the request id. */
  private readonly byPid = new Map<number, { cb: SpawnCallbacks; id: string }>();
  private readonly idPid = new Map<string, number>();

  private constructor(private readonly path: string) {}

  /** The shared launcher, or null when it is not available. */
  static get(): Spawner | null {
    if (Spawner.instance === undefined) {
      const p = process.env.WARREN_SPAWNER_PATH ?? spawnerPath();
      Spawner.instance = process.env.WARREN_SPAWNER === 'node' || !existsSync(p) ? null : new Spawner(p);
    }
    return Spawner.instance;
  }

  /** The launcher's pid while it runs (for tests and `warren status`). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    // Its own process group: a signal to the caller's group (Ctrl-C, kill -TERM -PGID) is
    // Warren's to handle; the launcher ends when its stdin closes or its parent dies.
    const c = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    c.stdout!.setEncoding('latin1');
    c.stdout!.on('data', (d: string) => this.onData(d));
    c.on('close', () => this.onDeath(c));
    c.on('error', () => this.onDeath(c));
    c.stdin!.on('error', () => {});
    this.child = c;
    if (!Spawner.hooked) {
      Spawner.hooked = true;
      // Exiting without close(): the launcher kills what it still runs and exits by itself.
      process.on('exit', () => {
        const ch = Spawner.instance?.child;
        if (ch?.pid) {
          try {
            process.kill(ch.pid, 'SIGTERM');
          } catch {
            /* gone */
          }
        }
      });
    }
    this.refresh();
    return c;
  }

  /** Keep Node alive only while jobs are in flight. */
  private refresh(): void {
    const c = this.child;
    if (!c) return;
    const busy = this.pendingStart.size + this.byPid.size > 0 || this.closing !== null;
    const s = c.stdout as unknown as { ref(): void; unref(): void };
    if (busy) {
      c.ref();
      s.ref();
    } else {
      c.unref();
      s.unref();
    }
  }

  /** Start a process; returns a handle for go()/abort(). Throws RUNTIME_BAD_REQUEST for a request execve cannot take. */
  spawn(req: SpawnRequest, cb: SpawnCallbacks): string {
    const defect = requestDefect(req);
    if (defect) throw nulError(defect);
    for (const d of req.cgroups ?? []) if (d.includes('\0')) throw nulError('a cgroup path contains a NUL byte');
    const c = this.ensure();
    const id = String(this.nextId++);
    const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
    const frame = new FrameWriter('L')
      .str(id)
      .str(req.cwd)
      .str(req.stdoutPath)
      .str(req.stderrPath)
      .u32((req.hold ? 1 : 0) | (req.credentials ? 2 : 0))
      .strs(req.argv)
      .strs(env)
      .strs(req.cgroups ?? []);
    if (req.credentials) {
      const cr = req.credentials;
      frame.u32(cr.uid).u32(cr.gid).u32(Math.min(cr.groups.length, 256));
      for (const g of cr.groups.slice(0, 256)) frame.u32(g);
    }
    const bytes = frame.done();
    this.pendingStart.set(id, cb);
    this.refresh();
    c.stdin!.write(bytes);
    return id;
  }

  /** Let a held process exec its command. */
  go(handle: string): void {
    this.child?.stdin!.write(new FrameWriter('G').str(handle).done());
  }

  /** End a held process without running its command (its exit, status 127, follows). */
  abort(handle: string): void {
    this.child?.stdin!.write(new FrameWriter('A').str(handle).done());
  }

  /**
   * End the launcher and wait until it has exited. Jobs still running are killed by it
   * (their exits are reported first). A later spawn() starts a new launcher.
   */
  close(): Promise<void> {
    const c = this.child;
    if (!c) return Promise.resolve();
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      c.once('close', () => resolve());
      c.stdin!.end();
    });
    this.refresh();
    return this.closing;
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const f = line.split(' ');
      if (f[0] === 'S') {
        const id = f[1]!;
        const cb = this.pendingStart.get(id);
        this.pendingStart.delete(id);
        const pid = Number(f[2]);
        const created = Number(f[3] ?? 0);
        if (cb) {
          this.byPid.set(pid, { cb, id });
          this.idPid.set(id, pid);
          cb.started(pid, { stdout: (created & 1) !== 0, stderr: (created & 2) !== 0 });
        }
      } else if (f[0] === 'F') {
        const cb = this.pendingStart.get(f[1]!);
        this.pendingStart.delete(f[1]!);
        const errno = errnoNames.get(Number(f[2])) ?? `errno ${f[2]}`;
        cb?.failed(`${f[3]} failed: ${errno}`, errno, f[3]!);
      } else if (f[0] === 'E') {
        const pid = this.idPid.get(f[1]!);
        const e = pid !== undefined ? this.byPid.get(pid) : undefined;
        e?.cb.execFailed?.(errnoNames.get(Number(f[2])) ?? `errno ${f[2]}`);
      } else if (f[0] === 'X') {
        const pid = Number(f[1]);
        const st = Number(f[2]);
        const e = this.byPid.get(pid);
        if (e) {
          this.byPid.delete(pid);
          this.idPid.delete(e.id);
          const cpuMs = f[3] !== undefined ? Math.round(Number(f[3]) / 1000) : undefined;
          if ((st & 0x7f) === 0) e.cb.exited((st >> 8) & 0xff, null, cpuMs);
          else e.cb.exited(null, signalNames.get(st & 0x7f) ?? 'SIGKILL', cpuMs);
        }
      }
    }
    this.refresh();
  }

  private onDeath(c: ChildProcess): void {
    if (this.child !== c) return;
    this.child = null;
    this.closing = null;
    const lost = [...this.pendingStart.values(), ...[...this.byPid.values()].map((e) => e.cb)];
    // Jobs it started run on in their own sessions, unwatched: stop them rather than leak them.
    for (const pid of this.byPid.keys()) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.pendingStart.clear();
    this.byPid.clear();
    this.idPid.clear();
    for (const cb of lost) cb.failed('the process launcher (warren-spawn) died', 'EPIPE', 'launcher');
  }
}

/** End the shared process launcher (killing any job it still runs) and wait for it. Call at the end of a run. */
export function closeSpawner(): Promise<void> {
  return Spawner.get()?.close() ?? Promise.resolve();
}
