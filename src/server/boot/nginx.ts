// nginx mode of the boot service: the bulk files (kernels, root file systems) are served by an
// nginx that Warren configures and runs as its child (sendfile straight from the images
// directory); everything else is passed to Warren's own handler on loopback, with the client's
// address in a header that Warren believes only with the secret this configuration carries.
// See docs/decisions.md (2026-12-04) for the measurement behind it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { WarrenError, type LogFn } from '../../common/index.js';
import { PROXY_CLIENT_HEADER, PROXY_SECRET_HEADER } from './service.js';
import { dyingWithParent, stopChild } from './sources.js';

export interface NginxConfigInput {
  /** Where nginx listens (the --provision address). */
  listen: { host: string; port: number };
  /** Warren's own boot handler on loopback. */
  backend: { host: string; port: number };
  imagesDir: string;
  /** nginx's own directory (pid, temp paths). */
  dir: string;
  secret: string;
  /** Worker processes (default auto: one per core). */
  workers?: number | 'auto';
  /** The user the workers run as when nginx starts as root (default: root, who owns the data directory). */
  user?: string;
}

const q = (s: string): string => {
  if (/["\\\n;{}]/.test(s)) throw new WarrenError('PROVISION_NGINX_FAILED', `the path ${s} cannot go into an nginx configuration`, { hint: 'use a data directory without quotes, backslashes, braces or semicolons in its path' });
  return `"${s}"`;
};

const hostPort = (h: string, p: number): string => `${h.includes(':') ? `[${h}]` : h}:${p}`;

export function nginxConfig(i: NginxConfigInput): string {
  const tmp = join(i.dir, 'tmp');
  return `# Written by \`warren server --provision\` (nginx mode); rewritten at every start.
${i.user ? `user ${i.user};\n` : ''}worker_processes ${i.workers ?? 'auto'};
pid ${q(join(i.dir, 'nginx.pid'))};
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30s;
  server_tokens off;
  default_type application/octet-stream;
  client_body_temp_path ${q(join(tmp, 'body'))};
  proxy_temp_path ${q(join(tmp, 'proxy'))};
  fastcgi_temp_path ${q(join(tmp, 'fastcgi'))};
  uwsgi_temp_path ${q(join(tmp, 'uwsgi'))};
  scgi_temp_path ${q(join(tmp, 'scgi'))};
  server {
    listen ${hostPort(i.listen.host, i.listen.port)} reuseport;
    # Public, immutable content: the kernel and root file system of a node image, by digest.
    location ~ "^/provision/images/([0-9a-f]{64})/(vmlinuz|rootfs\\.cpio\\.gz)$" {
      alias ${q(`${i.imagesDir}/$1/$2`)};
      add_header Cache-Control "public, max-age=31536000, immutable";
    }
    # The rest (scripts, per-node overlays with their tokens) is Warren's.
    location / {
      proxy_pass http://${hostPort(i.backend.host, i.backend.port)};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header ${PROXY_CLIENT_HEADER} $remote_addr;
      proxy_set_header ${PROXY_SECRET_HEADER} "${i.secret}";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`;
}

export function nginxBin(): string | null {
  for (const d of ['/usr/sbin', '/sbin', ...(process.env.PATH ?? '').split(':')]) if (d && existsSync(`${d}/nginx`)) return `${d}/nginx`;
  return null;
}

function waitPort(host: string, port: number, ms: number, alive: () => boolean): Promise<boolean> {
  const until = Date.now() + ms;
  return new Promise((resolve) => {
    const tryOnce = (): void => {
      if (!alive()) return resolve(false);
      const s = connect({ host: host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) resolve(false);
        else setTimeout(tryOnce, 50);
      });
    };
    tryOnce();
  });
}

/** nginx in the foreground (`-g 'daemon off;'`), a child of the server. */
export class NginxChild {
  private child: ChildProcess | null = null;
  private stopping = false;
  private stderr = '';
  constructor(private readonly dir: string, private readonly log: LogFn) {}

  /** Write the configuration, check it (`nginx -t`), start nginx and wait until it listens. */
  async start(input: Omit<NginxConfigInput, 'dir' | 'user'>): Promise<void> {
    const bin = nginxBin();
    if (!bin) throw new WarrenError('PROVISION_TOOL_MISSING', 'nginx is not installed: the boot service\'s nginx mode runs it', { hint: 'apt-get install nginx-light (scripts/setup.sh does), or start the server with --provision-nginx off' });
    for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(this.dir, 'tmp', t), { recursive: true, mode: 0o700 });
    const conf = join(this.dir, 'nginx.conf');
    const user = process.getuid?.() === 0 ? userInfo().username : undefined;
    writeFileSync(conf, nginxConfig({ ...input, dir: this.dir, ...(user ? { user } : {}) }), { mode: 0o600 });
    const args = ['-p', this.dir, '-e', 'stderr', '-c', conf];
    const test = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
      const c = spawn(bin, [...args, '-t', '-q'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      c.stdout.on('data', (d: Buffer) => (text += d.toString()));
      c.stderr.on('data', (d: Buffer) => (text += d.toString()));
      c.on('error', reject);
      c.on('close', (code) => resolve({ code, text }));
    });
    if (test.code !== 0) throw new WarrenError('PROVISION_NGINX_FAILED', `nginx refuses its configuration ${conf}: ${test.text.trim().split('\n').slice(-2).join('; ')}`, { hint: 'read nginx\'s words above; or start the server with --provision-nginx off' });
    const c = spawn(...dyingWithParent(bin, [...args, '-g', 'daemon off;']), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = c;
    const line = (d: Buffer): void => {
      const t = d.toString();
      if (this.stderr.length < 4096) this.stderr += t;
      for (const l of t.split('\n')) if (l.trim()) this.log('warn', `nginx: ${l.trim()}`);
    };
    c.stdout!.on('data', line);
    c.stderr!.on('data', line);
    c.on('exit', (code, sig) => {
      if (this.child === c) this.child = null;
      if (!this.stopping) this.log('error', `nginx exited (${sig ?? `exit ${code}`}): the boot service's bulk files are not served until the server restarts`);
    });
    const up = await waitPort(input.listen.host, input.listen.port, 10_000, () => this.child === c);
    if (!up) {
      await this.stop();
      const why = this.stderr.trim().split('\n').slice(-2).join('; ');
      throw new WarrenError('PROVISION_NGINX_FAILED', `nginx did not come up on ${hostPort(input.listen.host, input.listen.port)}${why ? `: ${why}` : ''}`, { hint: 'is the address free (ss -ltnp)? or start the server with --provision-nginx off' });
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const c = this.child;
    this.child = null;
    // nginx: SIGTERM is its fast stop (SIGQUIT would wait for every download to finish).
    await stopChild(c, 5000);
  }
}
