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
  /** How many `warren server`s on the one store (default 1; more need PostgreSQL). Agents get every server's URL. */
  servers?: number;
  /** Server k runs in serverHosts[k] (its own network namespace), listening on its address; else on the bridge address or loopback. */
  serverHosts?: Host[];
  /** The agents' namespaces (default net.hosts). */
  agentHosts?: Host[];
  /** Agents in these network namespaces (one per agent); else on loopback. */
  net?: Network;
  /** The address the server listens on (default the network's bridge address, or loopback). */
  listenHost?: string;
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

/** SIGKILL a process of the cluster, if it still runs. */
function sigkill(p: ChildProcess | null | undefined): void {
  if (!p?.pid) return;
  try {
    process.kill(p.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

export class TestCluster {
  readonly dir: string;
  private readonly cleanupDir: () => void;
  readonly servers: (ChildProcess | null)[] = [];
  readonly serverLogs: string[] = [];
  readonly ports: number[] = [];
  readonly agents: (ChildProcess | null)[] = [];
  host = '127.0.0.1';
  adminToken = '';
  readonly agentLogs: string[] = [];

  private constructor(readonly o: ClusterOptions) {
    const t = tempDir('warren-cluster-', o.baseDir ?? (o.isolate ? '/var/tmp' : undefined));
    this.dir = t.dir;
    this.cleanupDir = t.cleanup;
    mkdirSync(join(this.dir, 'cfg'), { recursive: true });
  }

  /** Server 0 (the only one, by default). */
  get server(): ChildProcess | null {
    return this.servers[0] ?? null;
  }
  get port(): number {
    return this.ports[0] ?? 0;
  }
  /** Every server's log (server 0's alone with one server). */
  get serverLog(): string {
    return this.serverLogs.length < 2 ? (this.serverLogs[0] ?? '') : this.serverLogs.map((l, k) => `--- server ${k} ---\n${l}`).join('\n');
  }
  get url(): string {
    return this.urlOf(0);
  }
  get serverCount(): number {
    return this.o.servers ?? 1;
  }
  hostOfServer(k: number): string {
    return this.o.serverHosts?.[k]?.address ?? this.host;
  }
  urlOf(k: number): string {
    return `https://${this.hostOfServer(k)}:${this.ports[k]}`;
  }
  /** The CLI context of server k: `admin` for 0 (the current one), `admin1`... */
  contextOf(k: number): string {
    return k === 0 ? 'admin' : `admin${k}`;
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
      c.host = o.listenHost ?? (o.net ? o.net.serverAddress : '127.0.0.1');
      for (let k = 0; k < c.serverCount; k++) {
        c.servers.push(null);
        c.serverLogs.push('');
        // A server in a namespace listens on its own address: a port free there (fresh namespace: any).
        c.ports.push(o.serverHosts?.[k] ? 20_000 + Math.floor(Math.random() * 20_000) : await freePort(c.host));
      }
      // Server 0 first: it makes the CA and the first admin, and leads.
      await c.startServer(0);
      for (let k = 1; k < c.serverCount; k++) await c.startServer(k);
      c.adminToken = readFileSync(join(c.dir, 'srv', 'admin.token'), 'utf8').trim();
      for (let k = 0; k < c.serverCount; k++) {
        const r = await c.cli(['context', 'add', c.contextOf(k), '--server', c.urlOf(k), '--token', c.adminToken, '--ca', c.caFile]);
        if (r.code !== 0) throw new Error(`context add: ${r.stderr}`);
      }
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

  /** Start server k (default 0) and wait until it says it is ready. */
  async startServer(k = 0): Promise<void> {
    const data = join(this.dir, k === 0 ? 'srv' : `srv${k}`);
    const args = [warrenBin, 'server', '--data', data, '--listen', `${this.hostOfServer(k)}:${this.ports[k]}`, '--heartbeat', '500ms', '--grace', '2s', '--lost-after', '3s', '--lease-ttl', '3s', ...(this.o.store ? ['--store', this.o.store] : []), ...(this.o.serverArgs ?? [])];
    const h = this.o.serverHosts?.[k];
    const argv = [...(this.o.serverNodeArgs ?? []), ...args];
    const p = h ? h.spawn(process.execPath, argv, { env: this.env() as Record<string, string>, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(process.execPath, argv, { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.servers[k] = p;
    const from = this.serverLogs[k]!.length;
    p.stdout!.on('data', (d) => (this.serverLogs[k] += d));
    p.stderr!.on('data', (d) => (this.serverLogs[k] += d));
    const t0 = Date.now();
    while (!this.serverLogs[k]!.slice(from).includes('ready: ')) {
      if (p.exitCode !== null) throw new Error(`warren server ${k} exited ${p.exitCode}`);
      if (Date.now() - t0 > 20_000) throw new Error(`warren server ${k} did not start in 20 s`);
      await sleep(50);
    }
  }

  agentName(i: number): string {
    return `n${i + 1}`;
  }

  hostOf(i: number): Host | undefined {
    return this.o.agentHosts?.[i] ?? this.o.net?.hosts[i];
  }

  async startAgent(i: number, token?: string): Promise<void> {
    const urls = Array.from({ length: this.serverCount }, (_, k) => this.urlOf(k)).join(',');
    const args = [...(this.o.agentNodeArgs ?? []), warrenBin, 'agent', '--server', urls, '--data', join(this.dir, `agent${i}`), '--name', this.agentName(i), '--ca', this.caFile, '--cores', String(this.o.cores ?? 2), ...(token ? ['--token', token] : []), ...(this.o.agentArgs?.(i) ?? [])];
    const h = this.hostOf(i);
    const p = h ? h.spawn(process.execPath, args, { env: this.env() as Record<string, string>, stdio: ['ignore', 'pipe', 'pipe'], ...(this.o.isolate ? { isolate: { hostname: this.agentName(i) } } : {}) }) : spawn(process.execPath, args, { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.agents[i] = p;
    const add = (d: Buffer) => (this.agentLogs[i] += d.toString());
    p.stdout!.on('data', add);
    p.stderr!.on('data', add);
  }

  /** SIGKILL an agent: its launcher (warren-spawn) kills its jobs. */
  killAgent(i: number): void {
    sigkill(this.agents[i]);
    this.agents[i] = null;
  }

  /** SIGKILL server k (default 0). */
  killServer(k = 0): void {
    sigkill(this.servers[k]);
    this.servers[k] = null;
  }

  /** GET /api/v1/health of server k (no token). */
  async health(k: number, timeoutMs = 5000): Promise<{ status: number; body: { ok: boolean; role?: string; leaderUrl?: string | null; term?: number; store: { ok: boolean }; messages: string[] } }> {
    const { Agent, request } = await import('undici');
    const d = new Agent({ connect: { ca: readFileSync(this.caFile, 'utf8') } });
    try {
      const r = await request(`${this.urlOf(k)}/api/v1/health`, { dispatcher: d, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      return { status: r.statusCode, body: (await r.body.json()) as never };
    } finally {
      await d.close().catch(() => {});
    }
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
    const ss = this.servers.filter((p): p is ChildProcess => p !== null);
    for (const s of ss) if (s.pid && s.exitCode === null) s.kill('SIGTERM');
    const alive = (p: ChildProcess | null): boolean => p !== null && p.exitCode === null && p.signalCode === null;
    const t0 = Date.now();
    while (Date.now() - t0 < 5000 && (ss.some(alive) || this.agents.some(alive))) await sleep(50);
    for (const p of [...ss, ...this.agents]) if (p && alive(p)) p.kill('SIGKILL');
    this.cleanupDir();
  }
}
