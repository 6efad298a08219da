// Client of warren-spawn (src/runtime/spawner/warren-spawn.c), the small launcher that
// starts host jobs with vfork()+execve() off Node's event-loop thread. Built by
// scripts/setup.sh into dist/bin/warren-spawn; when it is missing (or WARREN_SPAWNER=node)
// the process runtime falls back to child_process.spawn. Both pass the same runtime
// contract suite.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SpawnCallbacks {
  started(pid: number): void;
  failed(message: string, errno: string, stage: string): void;
  exited(exitCode: number | null, signal: NodeJS.Signals | null): void;
}

export interface SpawnRequest {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  stdoutPath: string;
  stderrPath: string;
}

const signalNames = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([k, v]) => [v as number, k as NodeJS.Signals]));
const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v as number, k]));

/** dist/bin/warren-spawn, next to the compiled sources. */
export function spawnerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/src/runtime
  return join(here, '..', '..', 'bin', 'warren-spawn');
}

export class Spawner {
  private static instance: Spawner | null | undefined;
  private child: ChildProcess | null = null;
  private buf = '';
  private nextId = 1;
  private readonly pendingStart = new Map<string, SpawnCallbacks>();
  private readonly byPid = new Map<number, SpawnCallbacks>();
  /** Exits reported before we saw the start reply cannot happen (the helper writes S before X). */

  private constructor(private readonly path: string) {}

  /** The shared launcher, or null when it is not available. */
  static get(): Spawner | null {
    if (Spawner.instance === undefined) {
      const p = process.env.WARREN_SPAWNER_PATH ?? spawnerPath();
      Spawner.instance = process.env.WARREN_SPAWNER === 'node' || !existsSync(p) ? null : new Spawner(p);
    }
    return Spawner.instance;
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const c = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    c.stdout!.setEncoding('latin1');
    c.stdout!.on('data', (d: string) => this.onData(d));
    c.on('exit', () => this.onDeath(c));
    c.on('error', () => this.onDeath(c));
    c.stdin!.on('error', () => {});
    this.child = c;
    this.refresh();
    return c;
  }

  /** Keep Node alive only while jobs are in flight. */
  private refresh(): void {
    const c = this.child;
    if (!c) return;
    const busy = this.pendingStart.size + this.byPid.size > 0;
    const s = c.stdout as unknown as { ref(): void; unref(): void };
    if (busy) {
      c.ref();
      s.ref();
    } else {
      c.unref();
      s.unref();
    }
  }

  spawn(req: SpawnRequest, cb: SpawnCallbacks): void {
    const c = this.ensure();
    const id = String(this.nextId++);
    const parts: string[] = [id, req.cwd, req.stdoutPath, req.stderrPath, String(req.argv.length), ...req.argv];
    const env = Object.entries(req.env);
    parts.push(String(env.length));
    for (const [k, v] of env) parts.push(`${k}=${v}`);
    const body = Buffer.from(parts.join('\0') + '\0', 'utf8');
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32LE(body.length, 0);
    body.copy(frame, 4);
    this.pendingStart.set(id, cb);
    this.refresh();
    c.stdin!.write(frame);
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const f = line.split(' ');
      if (f[0] === 'S') {
        const cb = this.pendingStart.get(f[1]!);
        this.pendingStart.delete(f[1]!);
        const pid = Number(f[2]);
        if (cb) {
          this.byPid.set(pid, cb);
          cb.started(pid);
        }
      } else if (f[0] === 'F') {
        const cb = this.pendingStart.get(f[1]!);
        this.pendingStart.delete(f[1]!);
        const errno = errnoNames.get(Number(f[2])) ?? `errno ${f[2]}`;
        cb?.failed(`${f[3]} failed: ${errno}`, errno, f[3]!);
      } else if (f[0] === 'X') {
        const pid = Number(f[1]);
        const st = Number(f[2]);
        const cb = this.byPid.get(pid);
        this.byPid.delete(pid);
        if (cb) {
          if ((st & 0x7f) === 0) cb.exited((st >> 8) & 0xff, null);
          else cb.exited(null, signalNames.get(st & 0x7f) ?? 'SIGKILL');
        }
      }
    }
    this.refresh();
  }

  private onDeath(c: ChildProcess): void {
    if (this.child !== c) return;
    this.child = null;
    const lost = [...this.pendingStart.values(), ...this.byPid.values()];
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
    for (const cb of lost) cb.failed('the process launcher (warren-spawn) died', 'EPIPE', 'launcher');
  }
}
