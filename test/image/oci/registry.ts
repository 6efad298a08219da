// Test fixtures: a real OCI registry (Debian's docker-registry, distribution 2.x) on a
// loopback port with temporary storage, optionally behind htpasswd (basic) or token
// (bearer) authentication, and a counting / fault-injecting HTTP proxy in front of it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSign, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export function registryAvailable(): boolean {
  return existsSync(REGISTRY_BIN);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TokenAuthSetup {
  /** URL of the token endpoint (see startTokenServer). */
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
}

export interface LoopbackRegistry {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  url: string;
  dir: string;
  /** Where blobs live: <storage>/docker/registry/v2/blobs/sha256/<2>/<hex>/data */
  storageDir: string;
  logFile: string;
  blobDataPath(digest: string): string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Listen on this address (default 127.0.0.1; e.g. a test network's bridge address). */
  address?: string;
  htpasswd?: { user: string; password: string };
  token?: TokenAuthSetup;
}

/** Start docker-registry on 127.0.0.1:<free port>; resolves once /v2/ answers. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<LoopbackRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-registry-'));
  const storageDir = join(dir, 'storage');
  mkdirSync(storageDir);
  let auth = '';
  if (opts.htpasswd) {
    const r = spawnSync('htpasswd', ['-Bbn', opts.htpasswd.user, opts.htpasswd.password], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`htpasswd failed: ${r.error?.message ?? r.stderr}`);
    writeFileSync(join(dir, 'htpasswd'), r.stdout);
    auth = `auth:\n  htpasswd:\n    realm: warren-test\n    path: ${join(dir, 'htpasswd')}\n`;
  } else if (opts.token) {
    auth =
      `auth:\n  token:\n    realm: ${opts.token.realm}\n    service: ${opts.token.service}\n` +
      `    issuer: ${opts.token.issuer}\n    rootcertbundle: ${opts.token.certFile}\n`;
  }
  const logFile = join(dir, 'registry.log');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config =
      `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n` +
      `storage:\n  filesystem:\n    rootdirectory: ${storageDir}\n  delete:\n    enabled: true\n` +
      `http:\n  addr: ${opts.address ?? '127.0.0.1'}:${port}\n` +
      auth;
    writeFileSync(join(dir, 'config.yml'), config);
    const fd = openSync(logFile, 'a');
    const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    let dead = false;
    void exited.then(() => (dead = true));
    const url = `http://${opts.address ?? '127.0.0.1'}:${port}`;
    const deadline = Date.now() + 15_000;
    let up = false;
    while (!dead && Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/v2/`);
        await res.arrayBuffer();
        if (res.status === 200 || res.status === 401) {
          up = true;
          break;
        }
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!up) {
      child.kill('SIGKILL');
      await exited;
      if (attempt < 2) continue; // port raced away: try another
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start: ${log}`);
    }
    return {
      host: `${opts.address ?? '127.0.0.1'}:${port}`,
      url,
      dir,
      storageDir,
      logFile,
      blobDataPath: (digest: string) => {
        const hex = digest.replace(/^sha256:/, '');
        return join(storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
      },
      stop: async () => {
        if (!dead) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(t);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

export interface CountingProxy {
  host: string;
  url: string;
  /** `METHOD path` of every request seen. */
  requests: string[];
  blobGets(): string[];
  reset(): void;
  /** Cut blob responses for this digest after half of the body. */
  truncate: Set<string>;
  /** Send half of the blob for this digest, then hang (never finish the response). */
  stall: Set<string>;
  stop(): Promise<void>;
}

/** A loopback HTTP proxy in front of `upstream` that records requests and can cut blob downloads short. */
export async function startProxy(upstream: string): Promise<CountingProxy> {
  const requests: string[] = [];
  const truncate = new Set<string>();
  const stall = new Set<string>();
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const up = http.request(
      upstream + req.url,
      { method: req.method, headers: req.headers },
      (ur) => {
        const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
        if (req.method === 'GET' && m && (truncate.has(m[1]!) || stall.has(m[1]!)) && ur.statusCode === 200) {
          const cut = truncate.has(m[1]!);
          res.writeHead(200, ur.headers);
          const half = Math.floor(parseInt(String(ur.headers['content-length'] ?? '0'), 10) / 2);
          let sent = 0;
          ur.on('data', (c: Buffer) => {
            if (sent >= half) return;
            const part = c.subarray(0, half - sent);
            sent += part.length;
            res.write(part);
            if (sent >= half) {
              ur.destroy();
              if (cut) res.socket?.destroy();
            }
          });
          return;
        }
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    truncate,
    stall,
    blobGets: () => requests.filter((r) => /^GET \/v2\/.+\/blobs\/sha256:/.test(r)),
    reset: () => {
      requests.length = 0;
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface TokenServer {
  setup: TokenAuthSetup;
  /** Requests the token endpoint answered (`user` or `anonymous`, and the scopes). */
  issued: string[];
  stop(): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/**
 * A token service (the Docker registry token protocol): checks basic credentials and signs
 * RS256 JWTs with a throw-away certificate (made by openssl) the registry trusts.
 */
export async function startTokenServer(users: Record<string, string>): Promise<TokenServer> {
  const dir = mkdtempSync(join(tmpdir(), 'warren-token-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=warren-test-token'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.error?.message ?? r.stderr}`);
  const keyPem = readFileSync(key, 'utf8');
  const der = Buffer.from(
    readFileSync(cert, 'utf8')
      .replace(/-----(BEGIN|END) CERTIFICATE-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  );
  const service = 'warren-test-registry';
  const issuer = 'warren-test-issuer';
  const issued: string[] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const authz = req.headers.authorization ?? '';
    let user = 'anonymous';
    if (authz.startsWith('Basic ')) {
      const [name, pass] = Buffer.from(authz.slice(6), 'base64').toString().split(':');
      if (!name || users[name] !== pass) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
        return;
      }
      user = name;
    }
    const scopes = u.searchParams.getAll('scope');
    issued.push(`${user} ${scopes.join(' ')}`);
    const access =
      user === 'anonymous'
        ? []
        : scopes
            .map((s) => s.split(':'))
            .filter((p) => p.length >= 3)
            .map((p) => ({ type: p[0], name: p.slice(1, -1).join(':'), actions: p[p.length - 1]!.split(',') }));
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')] };
    const claims = { iss: issuer, sub: user, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(keyPem);
    const token = `${input}.${b64url(sig)}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise<void>((r2) => server.listen(0, '127.0.0.1', r2));
  const port = (server.address() as net.AddressInfo).port;
  return {
    setup: { realm: `http://127.0.0.1:${port}/token`, service, issuer, certFile: cert },
    issued,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r2) => server.close(() => r2()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
