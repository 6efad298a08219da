// The node side of cluster mode: `warren agent` joins the server once with a join token
// (its own key, a CSR; key, certificate and trust bundle kept in its data directory, 0600),
// then talks to it over mutual TLS only: heartbeats (with the node's changes and its reports,
// batched and retried until acknowledged, kept in a journal file so none is lost across a
// restart), a long poll for work (assignments -> agent.submit, kills -> agent.kill, log
// requests -> uploads of agent.logs), renewal of its certificate at half life (a new client
// TLS context, no restart). Cut off from the server longer than stopAfterMs it kills its
// attempts (self-fencing) and keeps their exit reports for when it is back.
import { EventEmitter } from 'node:events';
import { Readable, type Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent as HttpAgent, request, type Dispatcher } from 'undici';
import { TUNNEL_ERROR_HEADER, WarrenError, attemptFields, isWarrenError, joinStreams, requestUpgrade, toLogger, toWarrenError, type LogFn, type Logger } from '../common/index.js';
import {
  AgentIdentity,
  PendingIdentity,
  TrustBundle,
  BUNDLE_FILE,
  ensureClosedDir,
  MESH_TLS_MIN_VERSION,
  clientTlsOptions,
  isSpiffeName,
  verifySvid,
  x509,
} from '../mesh/index.js';
import { HealthChecker, type HealthCheckOptions } from './health.js';
import { NodeRetention } from './retention.js';
import { AGENT_PROTOCOL, LEAVING_PROTOCOL_MINOR, RETENTION_PROTOCOL_MINOR, SERVICES_PROTOCOL_MINOR, type Agent, type AttemptExited, type AttemptStarted, type NodeInfo } from './contract.js';
import {
  AGENT_ROUTE_PREFIX,
  checkProtocol,
  type HealthReport,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JoinRequest,
  type JoinResponse,
  type LogOrder,
  type PollResponse,
  type RenewResponse,
  type ReportItem,
  type RunsRequest,
  type RunsResponse,
  type TunnelOrder,
} from './protocol.js';

import { JOURNAL_FILE } from './remote-lazy.js';
import { ServerList } from './servers.js';
export { JOURNAL_FILE };

export interface AgentDaemonTimers {
  /** Heartbeat period until the server says otherwise (default 5 s). */
  heartbeatMs?: number;
  /** Long poll asked for (default 25 s; the server caps it). */
  pollWaitMs?: number;
  /** Self-fencing delay until the server says otherwise (default 60 s). */
  stopAfterMs?: number;
  /** First wait after a failed request; doubles up to 10 s (default 500 ms). */
  retryMs?: number;
  /** Reports are sent within this long (default 5 ms)... */
  flushMs?: number;
  /** ...or as soon as this many are waiting (default 256). */
  maxBatch?: number;
  /** Requests other than the long poll and uploads give up after this long (default 15 s). */
  requestTimeoutMs?: number;
  /** A log upload goes in parts of at most this long (default 30 s; below the server's request timeout). */
  uploadPartMs?: number;
}

/** The agent's log (a Logger from src/common, or a plain callback): lines about an attempt carry workflowId, job and attemptId. */
export type DaemonLog = LogFn;

export interface AgentDaemonOptions {
  /** https://host:port of the server; with several servers (one leader), each of them, comma separated. */
  serverUrl: string;
  /** The node's name (one SPIFFE path segment). */
  name: string;
  dataDir: string;
  labels?: Record<string, string>;
  /** The node's local executor. */
  agent: Agent;
  /** The join token, for the first start (never needed again). */
  token?: string;
  timers?: AgentDaemonTimers;
  /** The cluster CA (PEM) to trust the server during the join; else `bundle.pem` in dataDir. No trust on first use. */
  caPem?: string;
  /** The server's name in its SPIFFE ID (`spiffe://td/server/NAME`); any server of the trust domain if absent. */
  serverName?: string;
  log?: DaemonLog;
  /** The node's health check: run at its interval, its results sent with the heartbeats (the server drains a failing node). */
  healthCheck?: HealthCheckOptions;
  /** The node's retention (`--retain`, `--disk-budget`; ./retention.ts). Without it, the daemon
   *  still removes the run directories of workflows the server pruned, but nothing else. */
  retention?: AgentRetentionOptions;
  /** A node that leaves by itself (a Slurm pilot, `--idle-exit`, `--until`): see AgentLifetime. */
  lifetime?: AgentLifetime;
}

/**
 * When the node leaves by itself: after `idleExitMs` without any task, or from `untilMs` on (ms
 * since the epoch: near the end of a pilot's walltime). It then says so in its heartbeats
 * (`leaving`, protocol 1.6: the server drains it), runs what it was given to its end, and
 * `finished` resolves (the daemon keeps running until stop()).
 */
export interface AgentLifetime {
  idleExitMs?: number;
  untilMs?: number;
  /** How often it looks (default a quarter of idleExitMs, between 50 ms and 1 s). */
  checkMs?: number;
}

export interface AgentRetentionOptions {
  /** Keep finished runs' directories and unused images this long (null: forever, but for the budget). */
  retainMs: number | null;
  /** Keep the node's run directories and image cache under this many bytes (null: no budget). */
  budgetBytes: number | null;
  /** How often to sweep (default: a tenth of retainMs, between 1 s and 10 min; 10 min without it). */
  intervalMs?: number;
  /** The image cache to evict from (default: none). */
  imageCacheDir?: string;
}

export interface DaemonStatus {
  node: string;
  connected: boolean;
  fenced: boolean;
  lastContactAt: number | null;
  pendingReports: number;
  certNotAfter: Date | null;
}

export interface AgentDaemonEvents {
  connected: [];
  disconnected: [WarrenError];
  /** The server refused a request (revoked, unknown node, protocol, ...). */
  refused: [WarrenError];
  renewed: [Date];
  fenced: [attempts: string[]];
  /** A journal batch was acknowledged by the server. */
  acked: [seq: number];
}

// ---- the journal of reports ----

type JournalLine = { v: 1; epoch: string; next: number } | ReportItem | { ack: number };

/**
 * Reports not yet acknowledged, in memory and appended to a file: a header line
 * `{v, epoch, next}`, then report lines `{seq, type, event}` and ack lines `{ack}`. Rewritten
 * (compacted) when it grows; a torn last line (a crash mid-write) is ignored.
 */
class ReportJournal {
  epoch = '';
  private next = 1;
  pending: ReportItem[] = [];
  private buffer: string[] = [];
  private writing: Promise<void> = Promise.resolve();
  private lines = 0;
  /** After close: appends are written synchronously (reports of attempts that end while no daemon runs). */
  private closed = false;

  constructor(private readonly path: string) {}

  load(): void {
    let header: { epoch: string; next: number } | null = null;
    let acked = 0;
    const items = new Map<number, ReportItem>();
    if (existsSync(this.path)) {
      for (const line of readFileSync(this.path, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        let o: JournalLine;
        try {
          o = JSON.parse(line) as JournalLine;
        } catch {
          continue; // a torn write
        }
        if ('v' in o) header = { epoch: o.epoch, next: o.next };
        else if ('ack' in o) acked = Math.max(acked, o.ack);
        else if ('seq' in o && typeof o.seq === 'number') items.set(o.seq, o);
      }
    }
    this.epoch = header?.epoch ?? randomBytes(8).toString('hex');
    let max = (header?.next ?? 1) - 1;
    for (const s of items.keys()) max = Math.max(max, s);
    this.next = max + 1;
    this.pending = [...items.values()].filter((r) => r.seq > acked).sort((a, b) => a.seq - b.seq);
    this.buffer = [];
    this.closed = false;
    this.rewrite();
  }

  /** One open descriptor for appends (reopened after a rewrite renamed a new file in). */
  private fd: number | null = null;

  private rewrite(): void {
    const text = [JSON.stringify({ v: 1, epoch: this.epoch, next: this.next }), ...this.pending.map((r) => JSON.stringify(r))].join('\n') + '\n';
    writeFileAtomic(this.path, text);
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.lines = this.pending.length + 1;
  }

  /** Append to the journal (a small write to the page cache: cheaper than an async open/close per batch). */
  private appendNow(data: string): void {
    try {
      if (this.fd === null) this.fd = openSync(this.path, 'a', 0o600);
      writeSync(this.fd, data);
    } catch {
      this.fd = null;
    }
  }

  append(type: ReportItem['type'], event: ReportItem['event']): ReportItem {
    const item = { seq: this.next++, type, event } as ReportItem;
    this.pending.push(item);
    const line = JSON.stringify(item);
    if (this.closed) {
      appendFileSync(this.path, line + '\n', { mode: 0o600 });
    } else {
      this.buffer.push(line);
      if (this.buffer.length === 1) queueMicrotask(() => this.flushBuffer());
    }
    return item;
  }

  private flushBuffer(): void {
    if (!this.buffer.length) return;
    const data = this.buffer.join('\n') + '\n';
    this.lines += this.buffer.length;
    this.buffer = [];
    this.appendNow(data);
  }

  /** Drop what the server applied; returns the items dropped. */
  ack(seq: number): ReportItem[] {
    let i = 0;
    while (i < this.pending.length && this.pending[i]!.seq <= seq) i++;
    if (i === 0) return [];
    const dropped = this.pending.splice(0, i);
    this.flushBuffer();
    try {
      if (this.lines > 1000 && this.buffer.length === 0) this.rewrite();
      else {
        this.lines++;
        this.appendNow(JSON.stringify({ ack: seq }) + '\n');
      }
    } catch {
      /* the next rewrite catches up */
    }
    return dropped;
  }

  /** Write what is buffered; from now on appends are synchronous. */
  async close(): Promise<void> {
    this.flushBuffer();
    await this.writing;
    this.closed = true;
  }
}

/** Write a 0600 file by a rename: a reader (a restarted daemon) sees the old or the new journal. */
function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
}

// ---- the daemon ----

async function* fromChunks(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_SEND = 4096;

/** The trust domain a CA bundle is for (the CA certificate's URI SAN `spiffe://td`). */
function trustDomainOf(bundle: TrustBundle): string {
  for (const c of bundle.certificates) {
    const san = new x509.X509Certificate(c.raw).getExtension(x509.SubjectAlternativeNameExtension);
    const uri = san?.names.items.find((n) => n.type === 'url')?.value;
    const m = uri ? /^spiffe:\/\/([a-z0-9._-]+)\/?$/.exec(uri) : null;
    if (m) return m[1]!;
  }
  throw new WarrenError('AGENT_NO_TRUST', 'the cluster CA certificate has no SPIFFE trust domain (URI SAN spiffe://<trust domain>)', {
    hint: 'give the ca.crt of the Warren server (`--ca`), not another CA',
  });
}

/** A transient failure (no answer) rather than a refusal by the server. */
function unreachable(e: unknown, what: string): WarrenError {
  if (isWarrenError(e)) return e;
  const err = e as Error & { code?: string; cause?: Error & { code?: string } };
  const detail = [err.code, err.message, err.cause?.message].filter(Boolean).join(': ');
  return new WarrenError('AGENT_SERVER_UNREACHABLE', `${what}: ${detail}`, {
    hint: 'check that the server runs and that this machine reaches it (address, port, firewall); the agent keeps trying',
    cause: e,
  });
}

export class AgentDaemon extends EventEmitter<AgentDaemonEvents> {
  private identity: AgentIdentity | null = null;
  private dispatcher: HttpAgent | null = null;
  private uploadDispatcher: HttpAgent | null = null;
  private readonly journal: ReportJournal;
  private readonly log: Logger;
  /** The servers, and which one requests go to now (the leader, as far as the agent knows). */
  private readonly servers: ServerList;
  private get url(): URL {
    return this.servers.current;
  }
  private heartbeatMs: number;
  private stopAfterMs: number;
  private pollWaitMs: number;
  private readonly retryMs: number;
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly requestTimeoutMs: number;
  private readonly uploadPartMs: number;
  private running = false;
  private stopping = false;
  private connected = false;
  private fenced = false;
  private lastContact: number | null = null;
  private needAttempts = true;
  private lastInfo = '';
  /** The highest report seq carried by an answered heartbeat. */
  private lastSentSeq = 0;
  /** Attempt ids given to the agent (or recovered from it), until their exit is acknowledged. */
  private readonly known = new Set<string>();
  /** Attempts submitted and not exited. */
  private readonly active = new Set<string>();
  private readonly fencedIds = new Set<string>();
  private readonly uploads = new Map<string, AbortController>();
  private checker: HealthChecker | null = null;
  private retention: NodeRetention | null = null;
  /** The protocol minor of the server that answered last (0: none yet). */
  private serverMinor = 0;
  /** A heartbeat was answered since this daemon started: serverMinor is the server's. */
  private serverKnown = false;
  /** The health check's latest result, until a heartbeat carried it. */
  private pendingHealth: HealthReport | null = null;
  private pollAck: { epoch: string; cursor: number } | undefined;
  private pollAbort = new AbortController();
  private stopAbort = new AbortController();
  private wakeHb: (() => void) | null = null;
  private flushTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  /** The long poll was aborted to go again on a new connection (a renewed certificate): not a failure. */
  private repoll = false;
  private fenceTimer: NodeJS.Timeout | undefined;
  private loops: Promise<void>[] = [];
  /** Why it is leaving (AgentLifetime), once it is. */
  private leaving: string | null = null;
  /** When the server answered a heartbeat that carried `leaving` with drained: nothing new comes after a poll sent from then on. */
  private drainedAt: number | null = null;
  /** The start of the last long poll that returned. */
  private lastPollSentAt = 0;
  private lastBusyAt = Date.now();
  private lifeTimer: NodeJS.Timeout | undefined;
  private resolveFinished: (why: string) => void = () => {};
  /** Resolves with why, once the node left by itself (AgentLifetime): drained, and nothing it was given still runs. */
  readonly finished: Promise<string> = new Promise((r) => (this.resolveFinished = r));

  constructor(private readonly opts: AgentDaemonOptions) {
    super();
    if (!isSpiffeName(opts.name)) {
      throw new WarrenError('MESH_NAME_INVALID', `"${opts.name}" is not a valid node name`, { hint: 'use letters, digits, dots, dashes and underscores (at most 255), e.g. "n001"' });
    }
    this.servers = new ServerList(opts.serverUrl, (level, msg) => this.log(level, `node ${opts.name}: ${msg}`, { node: opts.name }));
    const t = opts.timers ?? {};
    this.heartbeatMs = t.heartbeatMs ?? 5_000;
    this.stopAfterMs = t.stopAfterMs ?? 60_000;
    this.pollWaitMs = t.pollWaitMs ?? 25_000;
    this.retryMs = t.retryMs ?? 500;
    this.flushMs = t.flushMs ?? 5;
    this.maxBatch = t.maxBatch ?? 256;
    this.requestTimeoutMs = t.requestTimeoutMs ?? 15_000;
    this.uploadPartMs = t.uploadPartMs ?? 30_000;
    this.journal = new ReportJournal(join(opts.dataDir, JOURNAL_FILE));
    this.log = toLogger(opts.log);
  }

  get name(): string {
    return this.opts.name;
  }

  status(): DaemonStatus {
    return {
      node: this.opts.name,
      connected: this.connected,
      fenced: this.fenced,
      lastContactAt: this.lastContact,
      pendingReports: this.journal.pending.length,
      certNotAfter: this.identity?.svid.notAfter ?? null,
    };
  }

  /** The node's current certificate serial (tests, `warren agent status`). */
  get certSerial(): string | null {
    return this.identity?.svid.serial ?? null;
  }

  /**
   * Join if needed (a token on the first start), then run: heartbeats, the long poll,
   * renewals, self-fencing. Resolves once running; an unreachable server is retried.
   */
  async start(): Promise<void> {
    if (this.running) return;
    // Nobody else lists or writes it; `warren agent` makes it 0711 (passing through is how jobs running as their users reach their run directories).
    ensureClosedDir(this.opts.dataDir);
    let id: AgentIdentity | null = AgentIdentity.exists(this.opts.dataDir) ? AgentIdentity.load(this.opts.dataDir) : null;
    if (id && id.svid.name !== this.opts.name) {
      throw new WarrenError('MESH_IDENTITY_INVALID', `the identity in ${this.opts.dataDir} is node "${id.svid.name}", not "${this.opts.name}"`, {
        hint: `start the agent with --name ${id.svid.name}, or give another data directory to join as "${this.opts.name}"`,
      });
    }
    if (id && id.svid.kind !== 'node') {
      throw new WarrenError('MESH_IDENTITY_INVALID', `the identity in ${this.opts.dataDir} is a ${id.svid.kind} certificate, not a node's`, { hint: 'give the agent its own data directory' });
    }
    if (id && id.expired()) {
      if (!this.opts.token) {
        throw new WarrenError('MESH_CERT_EXPIRED', `the agent's certificate in ${this.opts.dataDir} expired at ${id.svid.notAfter.toISOString()} (the agent was stopped longer than its life)`, {
          hint: 'join again: start the agent with a new join token (`warren token create`)',
        });
      }
      id = null;
    }
    if (!id) {
      if (!this.opts.token) {
        throw new WarrenError('AGENT_NOT_JOINED', `node ${this.opts.name} has no identity in ${this.opts.dataDir} and no join token was given`, {
          hint: 'start it once with a join token (`warren token create` on the server): `warren agent --token TOKEN --ca ca.crt`',
        });
      }
      id = await this.join(this.opts.token);
    }
    this.identity = id;
    this.stopAbort = new AbortController();
    // Load the journal and take the agent's reports in one synchronous step (none slips between).
    this.journal.load();
    this.opts.agent.setListener({ started: (ev) => this.report('started', ev), exited: (ev) => this.report('exited', ev), launch: (ev) => this.report('launch', ev), ready: (ev) => this.report('ready', ev) });
    const alive = new Set<string>();
    for (const a of await this.opts.agent.recover()) {
      this.known.add(a.attemptId);
      if (a.state === 'running') {
        this.active.add(a.attemptId);
        alive.add(a.attemptId);
      }
    }
    // Attempts this daemon reported started (before a restart) whose end it never saw: their
    // jobs died with the previous agent process (its launcher kills them); say so.
    const ended = new Set(this.journal.pending.filter((r) => r.type === 'exited').map((r) => r.event.attemptId));
    for (const r of [...this.journal.pending]) {
      if (r.type !== 'started' || ended.has(r.event.attemptId) || alive.has(r.event.attemptId)) continue;
      ended.add(r.event.attemptId);
      this.journal.append('exited', { attemptId: r.event.attemptId, exitCode: null, signal: null, reason: 'agent-restarted', message: `the agent of node ${this.opts.name} restarted; the job was stopped with the previous agent process`, durationMs: 0, at: Date.now() });
      this.log('warn', `attempt ${r.event.attemptId} ended with the previous agent process (agent-restarted)`, { ...attemptFields(r.event.attemptId), node: this.opts.name });
    }
    ({ control: this.dispatcher, uploads: this.uploadDispatcher } = this.mtlsDispatchers(id));
    this.running = true;
    this.stopping = false;
    this.lastContact = Date.now();
    this.needAttempts = true;
    this.loops = [this.heartbeatLoop(), this.pollLoop()];
    this.scheduleRenew();
    this.armFence();
    if (this.opts.healthCheck) {
      const hc = this.opts.healthCheck;
      let lastOk: boolean | null = null;
      this.checker = new HealthChecker({ ...hc, env: { WARREN_NODE: this.opts.name, ...(hc.env ?? {}) } }, (r) => {
        if (r.ok !== lastOk) this.log(r.ok ? 'info' : 'warn', r.ok ? `health check passes (\`${r.command}\`)` : `health check failed (\`${r.command}\`${r.timedOut ? ', timed out and killed' : r.exitCode !== null ? `, exit ${r.exitCode}` : ''}): ${r.output.trim().slice(-300)}`, { node: this.opts.name });
        lastOk = r.ok;
        // Every result goes to the server (a new leader learns it within one interval).
        this.pendingHealth = r;
        this.wakeHeartbeat();
      });
      this.checker.start();
    }
    this.startRetention();
    this.startLifetime();
    this.log('info', `agent ${this.opts.name} started (${id.svid.uri}, certificate until ${id.svid.notAfter.toISOString()})`, { node: this.opts.name });
  }

  /** Stop talking to the server (attempts keep running; their reports wait in the journal). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.running = false;
    this.stopAbort.abort();
    this.pollAbort.abort();
    await this.checker?.stop();
    this.checker = null;
    await this.retention?.stop();
    this.retention = null;
    for (const ac of this.uploads.values()) ac.abort();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.fenceTimer) clearInterval(this.fenceTimer);
    if (this.lifeTimer) clearInterval(this.lifeTimer);
    this.wakeHb?.();
    await Promise.allSettled(this.loops);
    await this.journal.close();
    const ds = [this.dispatcher, this.uploadDispatcher];
    this.dispatcher = null;
    this.uploadDispatcher = null;
    for (const d of ds) await d?.destroy().catch(() => undefined);
    this.connected = false;
  }

  // ---- join and renewal ----

  private trust(): TrustBundle {
    if (this.opts.caPem) return TrustBundle.fromPem(this.opts.caPem, 'the cluster CA (--ca)');
    const p = join(this.opts.dataDir, BUNDLE_FILE);
    if (existsSync(p)) return TrustBundle.fromPem(readFileSync(p, 'utf8'), p);
    throw new WarrenError('AGENT_NO_TRUST', `there is no CA to check the server ${this.url.host} with: the agent does not trust a server on first use`, {
      hint: `give the cluster CA certificate (--ca ca.crt, from the server's CA directory) or put it in ${p}`,
    });
  }

  private async join(token: string): Promise<AgentIdentity> {
    const bundle = this.trust();
    const td = trustDomainOf(bundle);
    const pending = await PendingIdentity.create(this.opts.dataDir, this.opts.name);
    const d = new HttpAgent({
      connect: {
        ca: bundle.pem,
        minVersion: MESH_TLS_MIN_VERSION,
        rejectUnauthorized: true,
        checkServerIdentity: (_host: string, cert: { raw: Buffer }) => {
          try {
            verifySvid(cert.raw, { trustBundle: bundle, trustDomain: td, kind: 'server', ...(this.opts.serverName !== undefined ? { name: this.opts.serverName } : {}) });
            return undefined;
          } catch (e) {
            return e as Error;
          }
        },
      } as never,
    });
    try {
      const body: JoinRequest = { protocol: { ...AGENT_PROTOCOL }, token, csr: pending.csrPem, info: this.nodeInfo() };
      // Several servers: a follower refuses (SERVER_NOT_LEADER, naming the leader) and the join goes on to the next.
      let res: JoinResponse | undefined;
      for (let tries = 0; ; tries++) {
        try {
          res = await this.call<JoinResponse>(d, 'join', body, this.requestTimeoutMs);
          break;
        } catch (e) {
          const code = (e as WarrenError).code;
          if (this.servers.all.length < 2 || tries >= 4 * this.servers.all.length || (code !== 'SERVER_NOT_LEADER' && code !== 'AGENT_SERVER_UNREACHABLE')) throw e;
          await new Promise((r) => setTimeout(r, this.servers.retryWait(1000)));
        }
      }
      checkProtocol(res.protocol, 'server');
      const id = pending.complete(res.certPem, res.bundlePem);
      this.applyTimers(res);
      this.log('info', `node ${this.opts.name} joined ${this.url.host} as ${res.spiffeId}`, { node: this.opts.name });
      return id;
    } finally {
      await d.destroy().catch(() => undefined);
    }
  }

  /**
   * Two pools with the node's certificate: control (the long poll and heartbeats, one
   * connection each: a node costs the server two sockets) and uploads (log streams, which
   * may be long and must never hold a heartbeat up).
   */
  private mtlsDispatchers(id: AgentIdentity): { control: HttpAgent; uploads: HttpAgent } {
    const tls = clientTlsOptions(id.credentials, { trustDomain: id.svid.trustDomain, ...(this.opts.serverName !== undefined ? { serverName: this.opts.serverName } : {}) });
    return { control: new HttpAgent({ connect: tls as never, keepAliveTimeout: 60_000, connections: 2 }), uploads: new HttpAgent({ connect: tls as never, keepAliveTimeout: 10_000 }) };
  }

  private scheduleRenew(): void {
    if (!this.identity || !this.running) return;
    const wait = Math.max(0, this.identity.renewAt.getTime() - Date.now());
    this.renewTimer = setTimeout(() => void this.renew(), Math.min(wait, MAX_TIMER_MS));
    this.renewTimer.unref();
  }

  /** A new key and certificate now (at half life); the client TLS context is replaced without a restart. */
  async renew(): Promise<void> {
    const id = this.identity;
    if (!id || !this.running) return;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewing = true;
    try {
      const pending = await id.renew();
      const res = await this.call<RenewResponse>(this.dispatcher!, 'renew', { csr: pending.csrPem }, this.requestTimeoutMs);
      const next = pending.complete(res.certPem, res.bundlePem);
      this.useIdentity(next);
      // The long poll waits on a connection with the old certificate (which a CA rotation may
      // retire): ask again on the new one. Uploads finish on the old connections, then they close.
      this.repoll = true;
      this.pollAbort.abort();
      this.log('info', `renewed the certificate of node ${this.opts.name} until ${next.svid.notAfter.toISOString()}`, { node: this.opts.name, serial: next.svid.serial });
      this.emit('renewed', next.svid.notAfter);
      this.scheduleRenew();
    } catch (e) {
      const err = toWarrenError(e);
      this.log('warn', `could not renew the certificate of node ${this.opts.name}: ${err.message}`, { code: err.code });
      if (!this.running) return;
      if (id.expired()) {
        this.log('error', `the certificate of node ${this.opts.name} expired: join again with a new token`, { node: this.opts.name });
        return;
      }
      this.renewTimer = setTimeout(() => void this.renew(), Math.min(this.retryMs * 10, 30_000));
      this.renewTimer.unref();
    } finally {
      this.renewing = false;
    }
  }

  /** Use a new identity (a renewed certificate, or another trust bundle): new connections use it, in-flight requests finish on the old ones. */
  private useIdentity(next: AgentIdentity): void {
    this.identity = next;
    const old = [this.dispatcher, this.uploadDispatcher];
    ({ control: this.dispatcher, uploads: this.uploadDispatcher } = this.mtlsDispatchers(next));
    for (const d of old) void d?.close().catch(() => undefined);
  }

  /** A CA rotation: the server sent the bundle to trust now; it is kept in bundle.pem (a restarted agent trusts it too). */
  private takeBundle(pem: string): void {
    const id = this.identity;
    if (!id) return;
    try {
      if (TrustBundle.fromPem(pem, 'the trust bundle from the server').sameAs(id.trustBundle.fingerprints)) return;
      this.useIdentity(id.withBundle(pem));
      this.log('info', `node ${this.opts.name} trusts ${this.identity!.trustBundle.size} CA(s) now (a CA rotation)`, { node: this.opts.name, cas: this.identity!.trustBundle.fingerprints });
    } catch (e) {
      this.log('warn', `node ${this.opts.name} did not take the trust bundle the server sent: ${toWarrenError(e).message}`, { node: this.opts.name });
    }
  }

  // ---- requests ----

  private async call<T>(d: Dispatcher, route: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const used = this.url;
    try {
      const out = await this.callOnce<T>(used, d, route, body, timeoutMs, signal);
      this.servers.succeeded(used);
      return out;
    } catch (e) {
      if (!signal?.aborted) this.servers.failed(used, toWarrenError(e));
      throw e;
    }
  }

  private async callOnce<T>(url: URL, d: Dispatcher, route: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(new URL(`${AGENT_ROUTE_PREFIX}/${route}`, url), {
        method: 'POST',
        dispatcher: d,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      throw unreachable(e, `the ${route} request to ${url.host} failed`);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (e) {
      throw unreachable(e, `the answer to the ${route} request from ${url.host} broke off`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new WarrenError('AGENT_BAD_RESPONSE', `${url.host} answered the ${route} request with ${res.statusCode} and a body that is not JSON`, { hint: 'check that the address is a Warren server (and not a proxy in between)' });
    }
    if (res.statusCode >= 400) {
      const w = (parsed as { error?: unknown }).error;
      if (!w) throw new WarrenError('AGENT_BAD_RESPONSE', `${url.host} answered the ${route} request with ${res.statusCode} and no error`, { hint: 'check that the address is a Warren server' });
      throw WarrenError.fromWire(w);
    }
    return parsed as T;
  }

  private applyTimers(t: { heartbeatMs?: number; stopAfterMs?: number; pollWaitMs?: number }): void {
    if (typeof t.heartbeatMs === 'number' && t.heartbeatMs > 0) this.heartbeatMs = t.heartbeatMs;
    if (typeof t.pollWaitMs === 'number' && t.pollWaitMs >= 0) this.pollWaitMs = Math.min(this.pollWaitMs, t.pollWaitMs);
    if (typeof t.stopAfterMs === 'number' && t.stopAfterMs > 0 && t.stopAfterMs !== this.stopAfterMs) {
      this.stopAfterMs = t.stopAfterMs;
      if (this.running) this.armFence();
    }
  }

  /** A request sent at `sentAt` was answered: the server heard from us then (not later: the
   *  fence must never come after the server's idea of when it last saw this node). */
  private contact(sentAt: number): void {
    this.lastContact = Math.max(this.lastContact ?? 0, sentAt);
    if (this.fenced) {
      this.fenced = false;
      this.log('info', `node ${this.opts.name} reaches the server again`, { node: this.opts.name });
    }
    if (!this.connected) {
      this.connected = true;
      this.emit('connected');
    }
  }

  private failed(e: WarrenError): void {
    if (this.stopping) return;
    if (e.code !== 'AGENT_SERVER_UNREACHABLE' && e.code !== 'SERVER_NOT_LEADER') {
      this.log('error', `the server refused node ${this.opts.name}: ${e.message}`, { code: e.code });
      this.emit('refused', e);
    }
    if (this.connected) {
      this.connected = false;
      this.log('warn', `node ${this.opts.name} lost the server: ${e.message}`, { code: e.code });
      this.emit('disconnected', e);
    }
    // Whatever happened while cut off, the server gets the full picture when it is back.
    this.needAttempts = true;
    this.lastInfo = '';
  }

  /** Wait `ms`, or less: until stop, or until the function handed to `wake` is called. */
  private sleep(ms: number, wake?: (done: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping) return resolve();
      const t = setTimeout(done, ms);
      wake?.(done);
      const stop = this.stopAbort.signal;
      stop.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(t);
        stop.removeEventListener('abort', done);
        resolve();
      }
    });
  }

  // ---- reports and heartbeats ----

  private nodeInfo(): NodeInfo {
    const base = this.opts.agent.info();
    return { ...base, name: this.opts.name, labels: { ...base.labels, ...this.opts.labels }, protocol: { ...AGENT_PROTOCOL } };
  }

  private report(type: ReportItem['type'], ev: ReportItem['event']): void {
    if (type === 'launch') {
      // About a multinode job's daemons: forwarded through the server to the gang, at once.
    } else if (type === 'ready') {
      if (this.log.enabled('debug')) this.log('debug', `attempt ${ev.attemptId} ready`, { ...attemptFields(ev.attemptId), node: this.opts.name });
    } else if (type === 'exited') {
      this.active.delete(ev.attemptId);
      const x = ev as AttemptExited;
      const ok = x.reason === 'exit' && x.exitCode === 0;
      if (!ok || this.log.enabled('debug')) {
        this.log(ok ? 'debug' : 'info', `attempt ${ev.attemptId} ${ok ? 'succeeded' : `ended: ${x.reason}${x.exitCode !== null ? ` (exit code ${x.exitCode})` : ''}${x.message ? `: ${x.message}` : ''}`}`, { ...attemptFields(ev.attemptId), node: this.opts.name, reason: x.reason, exitCode: x.exitCode ?? undefined, signal: x.signal ?? undefined });
      }
      if (this.fencedIds.delete(ev.attemptId)) {
        const x = ev as AttemptExited;
        ev = {
          ...x,
          reason: 'canceled',
          message: `stopped by the agent of node ${this.opts.name}: it was cut off from the server ${this.url.host} for more than ${seconds(this.stopAfterMs)} (self-fencing), so the server may have given the work to another node${x.message ? ` (${x.message})` : ''}`,
        };
      }
    } else {
      this.active.add(ev.attemptId);
      if (this.log.enabled('debug')) this.log('debug', `attempt ${ev.attemptId} started`, { ...attemptFields(ev.attemptId), node: this.opts.name, pid: (ev as AttemptStarted).pid ?? undefined });
    }
    this.journal.append(type, ev);
    if (!this.running) return;
    if (this.journal.pending.length >= this.maxBatch) this.wakeHeartbeat();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.wakeHeartbeat();
      }, this.flushMs);
    }
  }

  private wakeHeartbeat(): void {
    const w = this.wakeHb;
    this.wakeHb = null;
    w?.();
  }

  private async heartbeatLoop(): Promise<void> {
    let backoff = this.retryMs;
    while (!this.stopping) {
      let ok = false;
      try {
        await this.heartbeat();
        ok = true;
        backoff = this.retryMs;
      } catch (e) {
        this.failed(toWarrenError(e));
      }
      if (this.stopping) break;
      // Reports that came while it was in flight go at once (that is the batching under load).
      if (ok && ((this.journal.pending.at(-1)?.seq ?? 0) > this.lastSentSeq || this.needAttempts)) continue;
      const wait = ok ? this.heartbeatMs : this.servers.retryWait(backoff);
      if (!ok) backoff = Math.min(backoff * 2, 10_000);
      // Reports hurry the next heartbeat, but not a retry after a failure (the backoff holds).
      await this.sleep(wait, ok ? (wake) => (this.wakeHb = wake) : undefined);
      this.wakeHb = null;
    }
  }

  private async heartbeat(): Promise<void> {
    const id = this.identity!;
    const body: HeartbeatRequest = { protocol: { ...AGENT_PROTOCOL }, epoch: this.journal.epoch, trust: id.trustBundle.fingerprints };
    // The attempt list first, then the reports: the server applies it before them, so a report
    // that came after the snapshot is not undone by it.
    const sendAttempts = this.needAttempts;
    if (sendAttempts) {
      // The full list: what the node runs, and what ended while the server did not hear of it
      // (its exit is still in the journal): never "unknown" for an attempt that has an end.
      const list = await this.opts.agent.recover();
      const listed = new Set(list.map((a) => a.attemptId));
      for (const r of this.journal.pending) {
        if (r.type !== 'exited' || listed.has(r.event.attemptId)) continue;
        listed.add(r.event.attemptId);
        list.push({ attemptId: r.event.attemptId, state: 'exited', pid: null, cgroup: null, startedAt: null, exit: r.event });
      }
      body.attempts = list;
    }
    const batch = this.journal.pending.slice(0, MAX_SEND);
    body.reports = batch;
    let sentUpTo = batch.length ? batch[batch.length - 1]!.seq : this.lastSentSeq;
    if (this.serverMinor < SERVICES_PROTOCOL_MINOR) {
      // `ready` reports are new in 1.5: a server that does not know them must not hear them (it
      // would take one for another kind). Until the server's version is known, send up to the first.
      const first = batch.findIndex((r) => r.type === 'ready' || (r.type === 'exited' && r.event.reason === 'not-ready'));
      if (first >= 0 && !this.serverKnown) {
        body.reports = batch.slice(0, first);
        sentUpTo = body.reports.length ? body.reports[body.reports.length - 1]!.seq : this.lastSentSeq;
      } else if (first >= 0) body.reports = batch.filter((r) => r.type !== 'ready');
      // Nor the exit reason `not-ready` (a service whose probe never passed): `error` there.
      body.reports = body.reports.map((r) => (r.type === 'exited' && r.event.reason === 'not-ready' ? { ...r, event: { ...r.event, reason: 'error' as const } } : r));
    }
    const info = this.nodeInfo();
    const infoText = JSON.stringify(info);
    if (infoText !== this.lastInfo) body.info = info;
    body.load = { ...this.opts.agent.load };
    const health = this.pendingHealth;
    if (health) body.health = health;
    const leaving = this.leaving;
    if (leaving !== null) body.leaving = leaving;
    const sentAt = Date.now();
    const res = await this.call<HeartbeatResponse>(this.dispatcher!, 'heartbeat', body, this.requestTimeoutMs, this.stopAbort.signal);
    checkProtocol(res.protocol, 'server');
    this.serverMinor = res.protocol.minor;
    this.serverKnown = true;
    this.contact(sentAt);
    this.lastSentSeq = Math.max(this.lastSentSeq, sentUpTo);
    this.lastInfo = infoText;
    if (sendAttempts) this.needAttempts = false;
    if (health && this.pendingHealth === health) this.pendingHealth = null;
    if (leaving !== null && res.drained && this.drainedAt === null) {
      this.drainedAt = sentAt;
      // Poll again at once (and briefly from now on): what the node was given before the drain comes now.
      this.repoll = true;
      this.pollAbort.abort();
    }
    // The server has no attempt list of this node (it restarted): the loop sends it at once.
    if (res.resync) this.needAttempts = true;
    this.applyTimers(res);
    // A CA rotation: trust the bundle the server sends; renew now a certificate it no longer issues from
    // (once: not if this heartbeat's certificate was already replaced, or a renewal is under way).
    if (res.bundlePem) this.takeBundle(res.bundlePem);
    if (res.renew && this.identity === id && !this.renewing) void this.renew();
    const dropped = this.journal.ack(res.ack);
    for (const r of dropped) if (r.type === 'exited') this.known.delete(r.event.attemptId);
    if (dropped.length) this.emit('acked', res.ack);
  }

  // ---- the long poll ----

  private async pollLoop(): Promise<void> {
    let backoff = this.retryMs;
    while (!this.stopping) {
      try {
        // Draining to leave: short polls, so that it leaves soon after its last task.
        const body = { waitMs: this.drainedAt !== null ? Math.min(this.pollWaitMs, 1000) : this.pollWaitMs, ...(this.pollAck ? { ack: this.pollAck } : {}) };
        this.pollAbort = new AbortController();
        this.repoll = false;
        const sentAt = Date.now();
        const res = await this.call<PollResponse>(this.dispatcher!, 'poll', body, this.pollWaitMs + this.requestTimeoutMs, this.pollAbort.signal);
        this.contact(sentAt);
        this.lastPollSentAt = sentAt;
        backoff = this.retryMs;
        if (res.cursor > 0) this.pollAck = { epoch: res.epoch, cursor: res.cursor };
        else if (this.pollAck && this.pollAck.epoch !== res.epoch) this.pollAck = undefined;
        this.take(res);
      } catch (e) {
        if (this.stopping) break;
        if (this.repoll) continue;
        this.failed(toWarrenError(e));
        await this.sleep(this.servers.retryWait(backoff));
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  private take(res: PollResponse): void {
    const agent = this.opts.agent;
    for (const a of res.assignments) {
      if (this.known.has(a.attemptId)) continue; // given again (an answer lost, a restart): it runs once
      this.known.add(a.attemptId);
      this.active.add(a.attemptId);
      if (this.log.enabled('debug')) this.log('debug', `attempt ${a.attemptId} assigned`, { ...attemptFields(a.attemptId), node: this.opts.name });
      try {
        agent.submit(a);
      } catch (e) {
        const err = toWarrenError(e);
        this.report('exited', { attemptId: a.attemptId, exitCode: null, signal: null, reason: 'spawn-error', message: err.message, failure: err.toWire(), durationMs: 0, at: Date.now() });
      }
    }
    for (const k of res.kills) {
      this.log('info', `attempt ${k.attemptId}: stopping it (${k.reason})`, { ...attemptFields(k.attemptId), node: this.opts.name, reason: k.reason });
      agent.kill(k.attemptId, k.reason);
    }
    for (const o of res.launches ?? []) agent.launch?.(o);
    for (const l of res.logRequests) void this.upload(l);
    for (const t of res.tunnels ?? []) void this.openTunnel(t);
    for (const id of res.stopLogs) this.uploads.get(id)?.abort();
    if (res.forget?.length && this.retention) void this.retention.forget(res.forget).catch((e: unknown) => this.log('warn', `retention: cannot remove the run directories of pruned workflows: ${(e as Error).message}`, { node: this.opts.name }));
  }

  // ---- leaving by itself (AgentLifetime, protocol 1.6) ----

  private startLifetime(): void {
    const lt = this.opts.lifetime;
    if (!lt || (lt.idleExitMs === undefined && lt.untilMs === undefined)) return;
    this.lastBusyAt = Date.now();
    const every = lt.checkMs ?? Math.min(1000, Math.max(50, Math.floor((lt.idleExitMs ?? 4000) / 4)));
    this.lifeTimer = setInterval(() => this.lifeCheck(), every);
    this.lifeTimer.unref();
  }

  private lifeCheck(): void {
    const lt = this.opts.lifetime!;
    const now = Date.now();
    const load = this.opts.agent.load;
    const busy = this.active.size > 0 || load.queued > 0 || load.running > 0;
    if (busy) this.lastBusyAt = now;
    if (this.leaving === null) {
      if (lt.untilMs !== undefined && now >= lt.untilMs) this.leave(`its end is near (until ${new Date(lt.untilMs).toISOString()}): it takes no new work`);
      else if (lt.idleExitMs !== undefined && !busy && now - this.lastBusyAt >= lt.idleExitMs) this.leave(`idle for ${seconds(now - this.lastBusyAt)}`);
      return;
    }
    // Done when the server drained it, a long poll sent after that came back (what was placed
    // on the node before the drain is delivered), nothing runs, and every report is acknowledged.
    if (this.drainedAt !== null && this.lastPollSentAt >= this.drainedAt && !busy && this.journal.pending.length === 0) {
      clearInterval(this.lifeTimer);
      this.lifeTimer = undefined;
      this.log('info', `agent ${this.opts.name} left: ${this.leaving}`, { node: this.opts.name });
      this.resolveFinished(this.leaving);
    }
  }

  private leave(why: string): void {
    if (this.serverKnown && this.serverMinor < LEAVING_PROTOCOL_MINOR) {
      // An older server would not drain it: leave at once when idle, else wait for an idle moment.
      this.log('warn', `node ${this.opts.name}: the server speaks protocol 1.${this.serverMinor}, older than 1.${LEAVING_PROTOCOL_MINOR}; leaving without a drain`, { node: this.opts.name });
    }
    this.leaving = why;
    this.log('info', `node ${this.opts.name} is leaving: ${why}`, { node: this.opts.name });
    if (this.serverKnown && this.serverMinor < LEAVING_PROTOCOL_MINOR) this.drainedAt = Date.now();
    this.wakeHeartbeat();
  }

  // ---- port forwards (protocol 1.5) ----

  /**
   * The server asked for a port forward to a service here: connect to its port, open the
   * tunnel (an upgrade of GET /agent/v1/tunnels/:id over mutual TLS) and join the two. When
   * the port cannot be reached, the tunnel request says why (x-warren-tunnel-error).
   */
  private async openTunnel(t: TunnelOrder): Promise<void> {
    let stream: Duplex | null = null;
    let failure: WarrenError | null = null;
    try {
      if (!this.opts.agent.connect) throw new WarrenError('SERVICE_FORWARD_UNSUPPORTED', `the agent of node ${this.opts.name} cannot forward ports`, { hint: 'upgrade the agent' });
      stream = await this.opts.agent.connect(t.attemptId, t.port);
    } catch (e) {
      failure = toWarrenError(e);
    }
    const id = this.identity;
    if (!id) {
      stream?.destroy();
      return;
    }
    try {
      const u = this.url;
      const tls = clientTlsOptions(id.credentials, { trustDomain: id.svid.trustDomain, ...(this.opts.serverName !== undefined ? { serverName: this.opts.serverName } : {}) });
      const socket = await new Promise<Duplex>((resolve, reject) => {
        const s = tlsConnect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 443), ...tls });
        s.once('secureConnect', () => {
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', reject);
      });
      const headers: Record<string, string> = failure ? { [TUNNEL_ERROR_HEADER]: Buffer.from(JSON.stringify(failure.toWire())).toString('base64') } : {};
      const up = await requestUpgrade(socket, { path: `${AGENT_ROUTE_PREFIX}/tunnels/${encodeURIComponent(t.tunnelId)}`, host: u.host, headers, timeoutMs: this.requestTimeoutMs });
      if (!stream) {
        up.destroy();
        return;
      }
      if (this.log.enabled('debug')) this.log('debug', `port forward to ${t.attemptId} port ${t.port} open`, { ...attemptFields(t.attemptId), node: this.opts.name });
      joinStreams(up, stream);
    } catch (e) {
      stream?.destroy();
      // Refused with the error we sent: it reached the user.
      if (!failure) this.log('warn', `port forward to ${t.attemptId} port ${t.port}: cannot open the tunnel to the server: ${(e as Error).message}`, { ...attemptFields(t.attemptId), node: this.opts.name });
    }
  }

  // ---- retention ----

  /** The node's retention sweeps (./retention.ts): the server says which runs ended or are gone. */
  private startRetention(): void {
    const r = this.opts.retention;
    const policy = { retainMs: r?.retainMs ?? null, budgetBytes: r?.budgetBytes ?? null };
    const agent = this.opts.agent;
    this.retention = new NodeRetention({
      home: this.opts.dataDir,
      policy,
      inUse: () => agent.inUse?.() ?? { workflows: new Set(), images: new Set() },
      lookup: (ids) => this.runEnds(ids),
      ...(r?.imageCacheDir ? { imageCacheDir: r.imageCacheDir } : {}),
      log: (level, msg) => this.log(level, `node ${this.opts.name}: ${msg}`, { node: this.opts.name }),
    });
    const every = r?.intervalMs ?? (policy.retainMs !== null ? Math.min(600_000, Math.max(1000, Math.round(policy.retainMs / 10))) : 600_000);
    this.retention.start(every);
  }

  /** Ask the server which of these workflows it has and whether they ended; null when it cannot say. */
  private async runEnds(ids: string[]): Promise<Map<string, { status: import('../engine/index.js').WorkflowStatus; endedAt: number | null }> | null> {
    if (!this.connected || !this.dispatcher || this.serverMinor < RETENTION_PROTOCOL_MINOR) return null;
    try {
      const res = await this.call<RunsResponse>(this.dispatcher, 'runs', { workflows: ids } satisfies RunsRequest, this.requestTimeoutMs, this.stopAbort.signal);
      return new Map(res.runs.map((x) => [x.id, { status: x.status as import('../engine/index.js').WorkflowStatus, endedAt: x.endedAt }]));
    } catch {
      return null;
    }
  }

  // ---- log uploads ----

  /**
   * Upload a log the server asked for, on this node's own connection. A small log goes in one
   * request; a large or followed one in parts of at most uploadPartMs (each shorter than the
   * server's request timeout), `x-warren-log: more` on all but the last. An error before the
   * first byte is sent as `{error}`; a later one after the bytes read so far.
   */
  private async upload(order: LogOrder): Promise<void> {
    const ac = new AbortController();
    this.uploads.set(order.requestId, ac);
    const path = `logs/${encodeURIComponent(order.requestId)}`;
    const it = this.opts.agent.logs(order.request, ac.signal)[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<Uint8Array>> | null = null;
    /** The next chunk, or 'later' at the deadline (the read stays pending for the next call). */
    const take = async (deadline: number): Promise<IteratorResult<Uint8Array> | 'later'> => {
      const p = (pending ??= it.next());
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([p, new Promise<'later'>((resolve) => (timer = setTimeout(() => resolve('later'), Math.max(0, deadline - Date.now()))))]);
      clearTimeout(timer);
      if (r !== 'later') pending = null;
      return r;
    };
    let carry: Uint8Array[] = [];
    let ended = false;
    let failure: unknown = null;
    const send = async (kind: 'more' | 'end', body: AsyncIterable<Uint8Array>): Promise<boolean> => {
      const res = await request(new URL(`${AGENT_ROUTE_PREFIX}/${path}`, this.url), {
        method: 'POST',
        dispatcher: this.uploadDispatcher!,
        headers: { 'content-type': 'application/octet-stream', 'x-warren-log': kind },
        body: Readable.from(body, { objectMode: false }),
        headersTimeout: 0,
        bodyTimeout: 0,
        signal: this.stopAbort.signal,
      });
      const text = await res.body.text();
      if (res.statusCode >= 400) return false; // AGENT_LOG_UNKNOWN: nobody waits for it any more
      return !(JSON.parse(text) as { stopped?: boolean }).stopped;
    };
    const sendError = async (e: unknown): Promise<void> => {
      await this.call(this.uploadDispatcher!, path, { error: toWarrenError(e).toWire() }, this.requestTimeoutMs).catch(() => undefined);
    };
    try {
      // Read ahead: a whole small log (or an early error) goes in one request.
      let size = 0;
      const t0 = Date.now();
      try {
        for (;;) {
          const r = await take(t0 + (carry.length ? 200 : 1000));
          if (r === 'later') break;
          if (r.done) {
            ended = true;
            break;
          }
          carry.push(r.value);
          size += r.value.byteLength;
          if (size >= 1 << 20) break;
        }
      } catch (e) {
        failure = e;
      }
      const partMs = this.uploadPartMs;
      for (;;) {
        if (failure) {
          if (carry.length) await send('more', fromChunks(carry));
          await sendError(failure);
          return;
        }
        if (ended) {
          await send('end', fromChunks(carry));
          return;
        }
        const deadline = Date.now() + partMs;
        const first = carry;
        carry = [];
        async function* part(): AsyncGenerator<Uint8Array> {
          yield* first;
          for (;;) {
            let r: IteratorResult<Uint8Array> | 'later';
            try {
              r = await take(deadline);
            } catch (e) {
              failure = e;
              return;
            }
            if (r === 'later') return;
            if (r.done) {
              ended = true;
              return;
            }
            yield r.value;
          }
        }
        if (!(await send('more', part()))) return;
      }
    } catch (e) {
      if (!this.stopping) this.log('warn', `the log upload ${order.requestId} of node ${this.opts.name} failed: ${(e as Error).message}`, { requestId: order.requestId });
    } finally {
      ac.abort();
      this.uploads.delete(order.requestId);
      void it.return?.().catch(() => undefined);
    }
  }

  // ---- self-fencing ----

  private armFence(): void {
    if (this.fenceTimer) clearInterval(this.fenceTimer);
    const every = Math.max(10, Math.min(1000, Math.round(this.stopAfterMs / 10)));
    this.fenceTimer = setInterval(() => void this.checkFence(), every);
    this.fenceTimer.unref();
  }

  private async checkFence(): Promise<void> {
    if (!this.running || this.fenced || this.lastContact === null) return;
    const silent = Date.now() - this.lastContact;
    if (silent <= this.stopAfterMs) return;
    this.fenced = true;
    const ids = new Set(this.active);
    try {
      for (const a of await this.opts.agent.recover()) if (a.state === 'running') ids.add(a.attemptId);
    } catch {
      // the agent's own list is best effort here; what this daemon started is known
    }
    this.log('warn', `node ${this.opts.name} was cut off from the server for ${seconds(silent)} (more than ${seconds(this.stopAfterMs)}): stopping its ${ids.size} attempts`, { node: this.opts.name });
    for (const id of ids) {
      this.fencedIds.add(id);
      this.opts.agent.kill(id, 'canceled');
    }
    this.emit('fenced', [...ids]);
  }
}
