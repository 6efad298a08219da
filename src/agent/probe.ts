// Readiness probes of services (Kubernetes-style, as Fuzzfiles write them): run by the agent
// that runs the service, against the service's ports on its node (the service shares the
// node's network, so 127.0.0.1 reaches it whether it listens on 127.0.0.1 or 0.0.0.0).
//
//   http-get    GET scheme://127.0.0.1:PORT/PATH with the headers; 200..399 passes (HTTPS: the
//               certificate is not checked, as Kubernetes does not)
//   tcp-socket  a TCP connection to the port is accepted
//   exec        the command, inside the job's environment (its container, or its user, env and
//               working directory for a host process), exits 0
//   grpc        the gRPC health protocol (grpc.health.v1.Health/Check over HTTP/2 without TLS)
//               answers SERVING
//
// The timing: after `initialDelaySec`, one probe every `periodSec` (each given `timeoutSec`);
// `successThreshold` passes in a row make the service ready (probing then stops), and
// `failureThreshold` failures in a row fail it with the last result.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as h2connect, constants as h2 } from 'node:http2';
import type { ReadinessProbe } from '../workflow/index.js';

export interface ProbeResult {
  ok: boolean;
  /** What it found: `HTTP 200`, `connection refused`, `timed out after 1s`, `exit code 1: ...`. */
  detail: string;
}

/** Runs a command inside the job (exec probes). */
export type ProbeExec = (argv: string[], timeoutMs: number) => Promise<{ exitCode: number | null; output: string; timedOut?: boolean }>;

/** The probe in words, as its messages name it: `http-get http://127.0.0.1:8080/`. */
export function describeProbe(p: ReadinessProbe, host = '127.0.0.1'): string {
  const a = p.action;
  switch (a.kind) {
    case 'http':
      return `http-get ${a.scheme.toLowerCase()}://${hostPort(host, a.port)}${a.path.startsWith('/') ? a.path : `/${a.path}`}`;
    case 'tcp':
      return `tcp-socket ${hostPort(host, a.port)}`;
    case 'grpc':
      return `grpc ${hostPort(host, a.port)}${a.service ? ` (service ${a.service})` : ''}`;
    case 'exec':
      return `exec ${JSON.stringify(a.command)}`;
  }
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function errText(e: unknown, timeoutSec: number): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ETIMEDOUT':
    case 'PROBE_TIMEOUT':
      return `timed out after ${formatSec(timeoutSec)}`;
    default:
      return err?.message ?? String(e);
  }
}

function formatSec(s: number): string {
  return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
}

const timeoutError = (): NodeJS.ErrnoException => Object.assign(new Error('timed out'), { code: 'PROBE_TIMEOUT' });

/** One probe, bounded by its timeout. Never rejects. */
export async function probeOnce(p: ReadinessProbe, opts: { host?: string; exec?: ProbeExec } = {}): Promise<ProbeResult> {
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = Math.max(1, Math.round(p.timeoutSec * 1000));
  const a = p.action;
  try {
    switch (a.kind) {
      case 'http':
        return await httpProbe(host, a, timeoutMs);
      case 'tcp':
        return await tcpProbe(host, a.port, timeoutMs);
      case 'grpc':
        return await grpcProbe(host, a.port, a.service, timeoutMs);
      case 'exec': {
        if (!opts.exec) return { ok: false, detail: 'exec probes cannot run here' };
        const r = await opts.exec(a.command, timeoutMs);
        if (r.timedOut) return { ok: false, detail: `timed out after ${formatSec(p.timeoutSec)}` };
        const out = r.output.trim().split('\n').filter(Boolean).slice(-1)[0];
        return r.exitCode === 0 ? { ok: true, detail: 'exit code 0' } : { ok: false, detail: `${r.exitCode === null ? 'killed' : `exit code ${r.exitCode}`}${out ? `: ${out.slice(0, 200)}` : ''}` };
      }
    }
  } catch (e) {
    return { ok: false, detail: errText(e, p.timeoutSec) };
  }
}

function httpProbe(host: string, a: Extract<ReadinessProbe['action'], { kind: 'http' }>, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'user-agent': 'warren-probe', accept: '*/*' };
    for (const h of a.headers) headers[h.name] = h.value;
    const req = (a.scheme === 'HTTPS' ? httpsRequest : httpRequest)(
      { host, port: a.port, path: a.path.startsWith('/') ? a.path : `/${a.path}`, method: 'GET', headers, ...(a.scheme === 'HTTPS' ? { rejectUnauthorized: false } : {}), agent: false },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        clearTimeout(t);
        req.destroy();
        resolve({ ok: code >= 200 && code < 400, detail: `HTTP ${code}` });
      },
    );
    const t = setTimeout(() => req.destroy(timeoutError()), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    req.end();
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port });
    const t = setTimeout(() => s.destroy(timeoutError()), timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve({ ok: true, detail: 'connected' });
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

const GRPC_SERVING_STATUS: Record<number, string> = { 0: 'UNKNOWN', 1: 'SERVING', 2: 'NOT_SERVING', 3: 'SERVICE_UNKNOWN' };

/** grpc.health.v1.Health/Check: HealthCheckRequest{service = 1} in, HealthCheckResponse{status = 1} out. */
function grpcProbe(host: string, port: number, service: string | undefined, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`http://${hostPort(host, port)}`);
    let settled = false;
    const finish = (r: ProbeResult | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      session.destroy();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const t = setTimeout(() => finish(timeoutError()), timeoutMs);
    session.on('error', (e) => finish(e));
    const name = Buffer.from(service ?? '', 'utf8');
    const msg = name.length ? Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]) : Buffer.alloc(0);
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt8(0, 0);
    frame.writeUInt32BE(msg.length, 1);
    msg.copy(frame, 5);
    const req = session.request({ [h2.HTTP2_HEADER_METHOD]: 'POST', [h2.HTTP2_HEADER_PATH]: '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    let httpStatus = 0;
    req.on('response', (h) => {
      httpStatus = Number(h[h2.HTTP2_HEADER_STATUS] ?? 0);
      // A trailers-only answer carries grpc-status in the headers.
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) grpcMessage = String(h['grpc-message']);
    });
    req.on('trailers', (h) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) grpcMessage = String(h['grpc-message']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', (e) => finish(e));
    req.on('end', () => {
      if (httpStatus !== 200) return finish({ ok: false, detail: `HTTP ${httpStatus} (not a gRPC server?)` });
      if (grpcStatus !== undefined && grpcStatus !== '0') {
        return finish({ ok: false, detail: `grpc-status ${grpcStatus}${grpcMessage ? ` (${decodeURIComponent(grpcMessage)})` : ''}${grpcStatus === '12' ? ': the server has no health service' : ''}` });
      }
      const body = Buffer.concat(chunks);
      const status = body.length >= 5 ? healthStatus(body.subarray(5, 5 + body.readUInt32BE(1))) : 0;
      finish({ ok: status === 1, detail: GRPC_SERVING_STATUS[status] ?? `status ${status}` });
    });
    req.end(frame);
  });
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** Field 1 (varint) of a HealthCheckResponse; 0 when absent. */
function healthStatus(msg: Buffer): number {
  let i = 0;
  while (i < msg.length) {
    const key = msg[i++]!;
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) {
      let v = 0;
      let shift = 0;
      for (;;) {
        const b = msg[i++] ?? 0;
        v |= (b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80) || i >= msg.length) break;
      }
      if (field === 1) return v;
    } else if (wire === 2) {
      let len = 0;
      let shift = 0;
      for (;;) {
        const b = msg[i++] ?? 0;
        len |= (b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80) || i >= msg.length) break;
      }
      i += len;
    } else return 0;
  }
  return 0;
}

export interface ProbeRunnerOptions {
  host?: string;
  exec?: ProbeExec;
  /** It passed `successThreshold` times in a row. */
  onReady(message: string): void;
  /** It failed `failureThreshold` times in a row: the message names the probe and its last result. */
  onFail(message: string): void;
}

/** The probe of one service attempt, on its timing, until it passes, fails or is stopped. */
export class ProbeRunner {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private passes = 0;
  private failures = 0;

  constructor(
    private readonly probe: ReadinessProbe,
    private readonly o: ProbeRunnerOptions,
  ) {}

  start(): void {
    this.later(this.probe.initialDelaySec);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private later(sec: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.once(), Math.max(0, Math.round(sec * 1000)));
  }

  private async once(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const t0 = Date.now();
    const r = await probeOnce(this.probe, { ...(this.o.host ? { host: this.o.host } : {}), ...(this.o.exec ? { exec: this.o.exec } : {}) });
    if (this.stopped) return;
    const what = `readiness probe ${describeProbe(this.probe, this.o.host)}`;
    if (r.ok) {
      this.failures = 0;
      if (++this.passes >= Math.max(1, this.probe.successThreshold)) {
        this.stopped = true;
        this.o.onReady(`${what} passed: ${r.detail}`);
        return;
      }
    } else {
      this.passes = 0;
      const limit = Math.max(1, this.probe.failureThreshold);
      if (++this.failures >= limit) {
        this.stopped = true;
        this.o.onFail(`${what} failed ${limit} time${limit === 1 ? '' : 's'}: ${r.detail}`);
        return;
      }
    }
    // The next probe one period after this one began.
    this.later(Math.max(0, this.probe.periodSec - (Date.now() - t0) / 1000));
  }
}
