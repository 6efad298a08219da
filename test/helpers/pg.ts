// Test harness: a private PostgreSQL server (never the shared one on 5432) that a test may
// stop and start again, e.g. to check that Warren survives its store going away.
//
//   import { startPostgres, postgresAvailable } from '../helpers/pg.js';
//   const skip = postgresAvailable() === true ? false : String(postgresAvailable());
//   test('survives the store going away', { skip, timeout: 120_000 }, async () => {
//     const pg = await startPostgres();        // database `warren`, user postgres, trust auth
//     try {
//       // ... use pg.url (postgres://postgres@127.0.0.1:PORT/warren) ...
//       await pg.stop('immediate');            // as if it crashed ('fast' by default)
//       await pg.start();                      // the same port, the same data
//     } finally {
//       await pg.destroy();                    // stops it, removes its directory
//     }
//   });
//
// It is a real server: initdb into a temporary directory (owned by the `postgres` system
// user when the tests run as root, since PostgreSQL refuses to run as root), listening on
// 127.0.0.1 only, on a free port (or `port`), its unix socket in that directory; fsync,
// synchronous_commit and full_page_writes on (durability tests mean it), shared_buffers
// small. Binaries are found on PATH, in /usr/local/bin or /usr/lib/postgresql/<newest>/bin.
// destroy() is idempotent; whatever is not destroyed is stopped (immediate) and removed at
// process exit, SIGINT, SIGTERM and SIGHUP, and what a SIGKILLed test process left is
// swept by the next startPostgres().
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { atProcessExit, pidAlive } from './cleanup.js';

export interface PostgresOptions {
  /** The port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** Listen on this address too (e.g. a test network's bridge address), taking clients of `cidr` (trust). */
  listen?: { address: string; cidr: string };
}

export interface PgInstance {
  /** postgres://postgres@127.0.0.1:PORT/warren */
  readonly url: string;
  readonly port: number;
  /** The temporary directory: data/ (PGDATA), log, the unix socket. */
  readonly dir: string;
  /** Whether the server is running (as far as stop/start know). */
  readonly running: boolean;
  /** Stops the server ('fast': clean shutdown, the default; 'immediate': like a crash). Resolves once it is down. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again (same port, same data); resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it and removes its directory. Idempotent. */
  destroy(): Promise<void>;
}

const DIR_PREFIX = 'warren-pg-';

interface Bin {
  initdb: string;
  pg_ctl: string;
}

let bins: Bin | string | undefined;

function findBinaries(): Bin | string {
  if (bins !== undefined) return bins;
  const dirs: string[] = [];
  for (const d of (process.env.PATH ?? '').split(':')) if (d) dirs.push(d);
  dirs.push('/usr/local/bin');
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian layout
  }
  for (const d of dirs) {
    if (existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl'))) {
      bins = { initdb: join(d, 'initdb'), pg_ctl: join(d, 'pg_ctl') };
      return bins;
    }
  }
  bins = 'PostgreSQL server binaries (initdb, pg_ctl) are not installed (PATH, /usr/local/bin, /usr/lib/postgresql/*/bin)';
  return bins;
}

/** uid/gid to run the server as when we are root. */
function postgresUser(): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === 'postgres') return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // no passwd
  }
  return undefined;
}

const asRoot = (): boolean => process.getuid?.() === 0;

/** true when startPostgres() can work here; else why not. */
export function postgresAvailable(): true | string {
  const b = findBinaries();
  if (typeof b === 'string') return b;
  if (asRoot() && !postgresUser()) return 'running as root, and there is no `postgres` system user to run the server as';
  if (asRoot() && spawnSync('runuser', ['--help'], { stdio: 'ignore' }).error) return 'running as root, and `runuser` is missing';
  return true;
}

/** argv that runs `cmd args` as the server's user. */
function asServerUser(cmd: string, args: string[]): [string, string[]] {
  return asRoot() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

function runAsync(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  const [c, a] = asServerUser(cmd, args);
  return new Promise((resolve) => {
    const child = spawn(c, a, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, out: out + e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

function stopSync(pgCtl: string, dir: string): void {
  const [c, a] = asServerUser(pgCtl, ['-D', join(dir, 'data'), '-m', 'immediate', '-w', '-t', '20', 'stop']);
  spawnSync(c, a, { cwd: dir, stdio: 'ignore', timeout: 30_000 });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Stops and removes the servers of test processes that died without cleaning up. */
export function sweepStalePostgres(): void {
  const b = findBinaries();
  if (typeof b === 'string') return;
  let entries: string[] = [];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = join(tmpdir(), e);
    let owner: number | undefined;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // being made, or not ours
    }
    if (!owner || pidAlive(owner)) continue;
    stopSync(b.pg_ctl, dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** initdb + start a private server with a database `warren` (see the top of this file). */
export async function startPostgres(opts: PostgresOptions = {}): Promise<PgInstance> {
  const b = findBinaries();
  const avail = postgresAvailable();
  if (typeof b === 'string' || avail !== true) throw new Error(`cannot start a private PostgreSQL: ${avail}`);
  sweepStalePostgres();

  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  const user = asRoot() ? postgresUser() : undefined;
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const log = join(dir, 'log');

  let destroyed = false;
  let running = false;
  const destroySync = (): void => {
    if (destroyed) return;
    destroyed = true;
    unregister();
    stopSync(b.pg_ctl, dir);
    rmSync(dir, { recursive: true, force: true });
  };
  const unregister = atProcessExit(destroySync);

  const fail = (what: string, out: string): never => {
    let tail = '';
    try {
      tail = readFileSync(log, 'utf8').slice(-2000);
    } catch {
      // no log yet
    }
    destroySync();
    throw new Error(`private PostgreSQL: ${what}: ${out.trim()}${tail ? `\n--- server log ---\n${tail}` : ''}`);
  };

  const init = await runAsync(b.initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'], dir, 120_000);
  if (init.code !== 0) fail('initdb failed', init.out);

  if (opts.listen) appendFileSync(join(data, 'pg_hba.conf'), `\n# warren test harness\nhost all all ${opts.listen.cidr} trust\n`);
  const pgCtl = async (args: string[]): Promise<{ code: number | null; out: string }> => runAsync(b.pg_ctl, ['-D', data, ...args], dir, 60_000);
  const setPort = (p: number): void =>
    appendFileSync(
      join(data, 'postgresql.conf'),
      [
        '',
        '# warren test harness (test/helpers/pg.ts)',
        `listen_addresses = '${['127.0.0.1', ...(opts.listen ? [opts.listen.address] : [])].join(',')}'`,
        `port = ${p}`,
        `unix_socket_directories = '${dir}'`,
        'fsync = on',
        'synchronous_commit = on',
        'full_page_writes = on',
        'shared_buffers = 16MB',
        'max_connections = 50',
        'logging_collector = off',
        '',
      ].join('\n'),
    );
  const startServer = (): Promise<{ code: number | null; out: string }> => pgCtl(['-l', log, '-w', '-t', '60', 'start']);

  let port = opts.port ?? (await freePort());
  setPort(port);
  let st = await startServer();
  // A free port can be taken between finding it and binding it: try others (not a given port).
  for (let retry = 0; st.code !== 0 && opts.port === undefined && retry < 3 && /already in use/i.test(readLogSafe(log)); retry++) {
    port = await freePort();
    setPort(port); // the last `port =` line wins
    st = await startServer();
  }
  if (st.code !== 0) fail(`pg_ctl start failed on port ${port}`, st.out);
  running = true;

  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  try {
    await admin.connect();
    await admin.query('CREATE DATABASE warren');
  } catch (e) {
    await admin.end().catch(() => {});
    fail('CREATE DATABASE warren failed', String(e));
  }
  await admin.end();

  return {
    url: `postgres://postgres@127.0.0.1:${port}/warren`,
    port,
    dir,
    get running() {
      return running;
    },
    stop: async (mode = 'fast') => {
      if (destroyed) throw new Error('private PostgreSQL: stop() after destroy()');
      const r = await pgCtl(['-m', mode, '-w', '-t', '60', 'stop']);
      if (r.code !== 0 && !/Is server running\?/.test(r.out)) throw new Error(`private PostgreSQL: pg_ctl stop -m ${mode} failed: ${r.out.trim()}`);
      running = false;
    },
    start: async () => {
      if (destroyed) throw new Error('private PostgreSQL: start() after destroy()');
      if ((await pgCtl(['status'])).code === 0) {
        running = true;
        return;
      }
      const r = await startServer();
      if (r.code !== 0) throw new Error(`private PostgreSQL: pg_ctl start failed on port ${port}: ${r.out.trim()}\n--- server log ---\n${readLogSafe(log).slice(-2000)}`);
      running = true;
    },
    destroy: async () => {
      running = false;
      destroySync();
    },
  };
}

function readLogSafe(log: string): string {
  try {
    return readFileSync(log, 'utf8');
  } catch {
    return '';
  }
}
