// A real cluster for tests: `warren server` and `warren agent` as processes (the CLI as users
// run it), agents optionally in network namespaces (test/helpers/netns.ts), a private
// PostgreSQL or SQLite, short timers. Everything it starts is stopped by close().

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { warrenBin, tempDir } from '../helpers.js';
import type { Host, Network } from '../helpers/netns.js';

export interface ClusterOptions {
  agents: number;
  /** Agents in these network namespaces (one per agent); else on loopback. */
  net?: Network;
  /** postgres://... (default: SQLite in the server's directory). */
  store?: string;
  serverArgs?: string[];
  /** Node options for the server process (e.g. --cpu-prof). */
  serverNodeArgs?: string[];
  agentNodeArgs?: string[];
  agentArgs?: (i: number) => string[];
  cores?: number;
  /** Each agent (in its namespace) also gets its own host name (its node name), /tmp and /dev/shm. */
  isolate?: boolean;
  /** Where the cluster's directory is made (default the temp dir; not /tmp with `isolate`). */
  baseDir?: string;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TestCluster {
  readonly dir: string;
  private readonly cleanupDir: () => void;
  server: ChildProcess | null = null;
  readonly agents: (ChildProcess | null)[] = [];
  host = '127.0.0.1';
  port = 0;
  adminToken = '';
  serverLog = '';
  readonly agentLogs: string[] = [];

  private constructor(readonly o: ClusterOptions) {
    const t = tempDir('warren-cluster-', o.baseDir ?? (o.isolate ? '/var/tmp' : undefined));
    this.dir = t.dir;
    this.cleanupDir = t.cleanup;
    mkdirSync(join(this.dir, 'cfg'), { recursive: true });
  }

  get url(): string {
    return `https://${this.host}:${this.port}`;
  }
  get caFile(): string {
    return join(this.dir, 'srv', 'ca.pem');
  }
  /** A file every job can append to (namespaces share the file system). */
  get ledger(): string {
    return join(this.dir, 'ledger');
  }

  static async start(o: ClusterOptions): Promise<TestCluster> {
    const c = new TestCluster(o);
    try {
      c.host = o.net ? o.net.serverAddress : '127.0.0.1';
      c.port = await freePort(c.host);
      await c.startServer();
      c.adminToken = readFileSync(join(c.dir, 'srv', 'admin.token'), 'utf8').trim();
      const r = await c.cli(['context', 'add', 'admin', '--server', c.url, '--token', c.adminToken, '--ca', c.caFile]);
      if (r.code !== 0) throw new Error(`context add: ${r.stderr}`);
      await c.cli(['context', 'use', 'admin']);
      for (let i = 0; i < o.agents; i++) {
        const tok = await c.cli(['token', 'create', '--ttl', '10m']);
        if (tok.code !== 0) throw new Error(`token create: ${tok.stderr}`);
        c.agents.push(null);
        c.agentLogs.push('');
        await c.startAgent(i, tok.stdout.trim());
      }
      await c.waitReady(o.agents);
      return c;
    } catch (e) {
      await c.close();
      throw new Error(`${(e as Error).message}\n--- server log ---\n${c.serverLog}\n--- agent logs ---\n${c.agentLogs.join('\n---\n')}`);
    }
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return { ...process.env, XDG_CONFIG_HOME: join(this.dir, 'cfg'), WARREN_HOME: join(this.dir, 'home'), WARREN_CONTEXT: '', ...extra };
  }

  async startServer(): Promise<void> {
    const args = [warrenBin, 'server', '--data', join(this.dir, 'srv'), '--listen', `${this.host}:${this.port}`, '--heartbeat', '500ms', '--grace', '2s', '--lost-after', '3s', '--lease-ttl', '3s', ...(this.o.store ? ['--store', this.o.store] : []), ...(this.o.serverArgs ?? [])];
    const p = spawn(process.execPath, [...(this.o.serverNodeArgs ?? []), ...args], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.server = p;
    p.stdout!.on('data', (d) => (this.serverLog += d));
    p.stderr!.on('data', (d) => (this.serverLog += d));
    const t0 = Date.now();
    while (!this.serverLog.includes('ready: ')) {
      if (p.exitCode !== null) throw new Error(`warren server exited ${p.exitCode}`);
      if (Date.now() - t0 > 20_000) throw new Error('warren server did not start in 20 s');
      await sleep(50);
    }
  }

  agentName(i: number): string {
    return `n${i + 1}`;
  }

  hostOf(i: number): Host | undefined {
    return this.o.net?.hosts[i];
  }

  async startAgent(i: number, token?: string): Promise<void> {
    const args = [...(this.o.agentNodeArgs ?? []), warrenBin, 'agent', '--server', this.url, '--data', join(this.dir, `agent${i}`), '--name', this.agentName(i), '--ca', this.caFile, '--cores', String(this.o.cores ?? 2), ...(token ? ['--token', token] : []), ...(this.o.agentArgs?.(i) ?? [])];
    const h = this.hostOf(i);
    const p = h ? h.spawn(process.execPath, args, { env: this.env() as Record<string, string>, stdio: ['ignore', 'pipe', 'pipe'], ...(this.o.isolate ? { isolate: { hostname: this.agentName(i) } } : {}) }) : spawn(process.execPath, args, { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.agents[i] = p;
    const add = (d: Buffer) => (this.agentLogs[i] += d.toString());
    p.stdout!.on('data', add);
    p.stderr!.on('data', add);
  }

  /** SIGKILL an agent: its launcher (warren-spawn) kills its jobs. */
  killAgent(i: number): void {
    const p = this.agents[i];
    if (p?.pid) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.agents[i] = null;
  }

  killServer(): void {
    if (this.server?.pid) process.kill(this.server.pid, 'SIGKILL');
    this.server = null;
  }

  async cli(args: string[], o: { context?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    const env = this.env(o.context ? { WARREN_CONTEXT: o.context } : {});
    if (!o.context) delete env.WARREN_CONTEXT;
    return new Promise((resolve) => {
      const p = spawn(process.execPath, [warrenBin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      const t = setTimeout(() => p.kill('SIGKILL'), o.timeoutMs ?? 60_000);
      p.on('close', (code) => {
        clearTimeout(t);
        resolve({ code, stdout, stderr });
      });
    });
  }

  async json<T>(args: string[], o: { context?: string } = {}): Promise<T> {
    const r = await this.cli([...args, '--json'], o);
    if (r.code !== 0) throw new Error(`warren ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  async nodes(): Promise<{ name: string; state: string; running: number }[]> {
    return this.json(['node', 'list']);
  }

  async waitReady(n: number, timeoutMs = 30_000): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const ns = await this.nodes().catch(() => []);
      if (ns.filter((x) => x.state === 'ready').length >= n) return;
      if (Date.now() - t0 > timeoutMs) throw new Error(`only ${ns.filter((x) => x.state === 'ready').length} of ${n} nodes ready: ${JSON.stringify(ns)}`);
      await sleep(200);
    }
  }

  /** Poll until `pred` holds (or throw after timeoutMs). */
  async until<T>(what: string, fn: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
    const t0 = Date.now();
    let last: T | undefined;
    for (;;) {
      try {
        last = await fn();
        if (pred(last)) return last;
      } catch {
        /* not yet */
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}\n--- server log ---\n${this.serverLog.slice(-4000)}`);
      await sleep(200);
    }
  }

  ledgerLines(): string[] {
    return existsSync(this.ledger) ? readFileSync(this.ledger, 'utf8').split('\n').filter(Boolean) : [];
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.agents.length; i++) {
      const p = this.agents[i];
      if (p?.pid && p.exitCode === null) {
        try {
          process.kill(p.pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
    }
    const s = this.server;
    if (s?.pid && s.exitCode === null) s.kill('SIGTERM');
    const t0 = Date.now();
    while (Date.now() - t0 < 5000 && ((s && s.exitCode === null && s.signalCode === null) || this.agents.some((p) => p && p.exitCode === null && p.signalCode === null))) await sleep(50);
    for (const p of [s, ...this.agents]) if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    this.cleanupDir();
  }
}
