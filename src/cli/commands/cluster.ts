// `warren server` (a cluster's head) and `warren agent` (each compute node): parse the
// options, start the composed server (src/server/serve.ts) or node agent (src/agent), and
// run until SIGINT/SIGTERM.

import { isIP } from 'node:net';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { WarrenError, parseDuration, parseSize } from '../../common/index.js';
import { parseAge } from './prune.js';

function duration(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = parseDuration(v);
  if (s === undefined || !(s > 0)) throw new WarrenError('CLI_BAD_OPTION', `${flag} takes a duration such as 500ms, 5s or 10m, not "${v}"`);
  return Math.round(s * 1000);
}

function listenAddr(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new WarrenError('CLI_BAD_OPTION', `--listen takes ADDRESS:PORT (e.g. 0.0.0.0:8443 or 127.0.0.1:0), not "${v}"`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function labels(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!v) return out;
  for (const kv of v.split(',')) {
    const m = /^([A-Za-z0-9_.\/-]+)=([^,]*)$/.exec(kv.trim());
    if (!m) throw new WarrenError('CLI_BAD_OPTION', `--labels takes k=v,k2=v2, and "${kv}" is not k=v`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** Run until a signal; then close (a second signal quits at once). */
function untilSignal(close: () => Promise<void>, what: string): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    const on = (sig: NodeJS.Signals): void => {
      if (++n > 1) process.exit(130);
      process.stderr.write(`${sig}: stopping ${what}\n`);
      close().then(resolve, resolve);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export function register(program: Command): void {
  program
    .command('server')
    .description('run a cluster server: the HTTPS API for users, mutual TLS for node agents, state in PostgreSQL')
    .requiredOption('--data <dir>', 'the server\'s directory: its CA (ca/), ca.pem for clients, admin.token (first start)')
    .option('--listen <addr:port>', 'where to listen', '0.0.0.0:8443')
    .option('--store <url>', 'postgres://... (a cluster), or a SQLite path (a single test server); default $WARREN_STORE, else DATA/warren.db')
    .option('--trust-domain <name>', 'the cluster\'s SPIFFE trust domain (first start only)', 'warren.local')
    .option('--name <name>', 'this server\'s name in its certificate (default: the host name)')
    .option('--host <names>', 'extra host names or addresses for the server certificate, comma separated')
    .option('--heartbeat <duration>', 'how often agents heartbeat (default 5s)')
    .option('--grace <duration>', 'a node silent this long is lost (default 15s, scaled with the node count)')
    .option('--lost-after <duration>', 'attempts of a lost node wait this long for it, then run elsewhere (default 5m)')
    .option('--stop-after <duration>', 'an agent cut off this long stops its own jobs (default 10m)')
    .option('--lease-ttl <duration>', 'the run ownership lease (default 15s)')
    .option('--leader-ttl <duration>', 'the leader lease, with two servers on one store: a follower takes over this long after the leader dies (default 8s)')
    .option('--advertise <url>', 'the https URL agents and the other servers reach this one at (default https://LISTEN-ADDRESS:PORT)')
    .option('--retain <duration>', 'prune finished workflows (their units, attempts, events, logs) that ended this long ago, e.g. 30d; running work is never pruned (default: keep them forever)')
    .action(async (o: { data: string; listen: string; store?: string; trustDomain: string; name?: string; host?: string; heartbeat?: string; grace?: string; lostAfter?: string; stopAfter?: string; leaseTtl?: string; leaderTtl?: string; advertise?: string; retain?: string }) => {
      const { host, port } = listenAddr(o.listen);
      const timers: Record<string, number> = {};
      const set = (k: string, flag: string, v: string | undefined) => {
        const ms = duration(flag, v);
        if (ms !== undefined) timers[k] = ms;
      };
      set('heartbeatMs', '--heartbeat', o.heartbeat);
      set('graceMs', '--grace', o.grace);
      set('lostAfterMs', '--lost-after', o.lostAfter);
      set('stopAfterMs', '--stop-after', o.stopAfter);
      set('leaseTtlMs', '--lease-ttl', o.leaseTtl);
      const leaderTtl = duration('--leader-ttl', o.leaderTtl);
      if (o.advertise !== undefined && !/^https:\/\/[^/]+$/.test(o.advertise)) throw new WarrenError('CLI_BAD_OPTION', `--advertise takes https://HOST:PORT, not "${o.advertise}"`);
      const retainMs = o.retain !== undefined ? Math.round(parseAge('--retain', o.retain, 1) * 1000) : undefined;
      const { startServer } = await import('../../server/serve.js');
      const s = await startServer({
        host,
        port,
        dataDir: o.data,
        ...(o.store ?? process.env.WARREN_STORE ? { store: o.store ?? process.env.WARREN_STORE } : {}),
        trustDomain: o.trustDomain,
        ...(o.name ? { name: o.name } : {}),
        ...(o.host ? { hosts: o.host.split(',').map((h) => h.trim()).filter(Boolean) } : {}),
        timers,
        ...(o.advertise ? { advertise: o.advertise } : {}),
        ...(retainMs !== undefined ? { retainMs } : {}),
        ...(leaderTtl ? { leaderTimers: { ttlMs: leaderTtl, renewMs: Math.round(leaderTtl / 4), retryMs: Math.min(1000, Math.round(leaderTtl / 8)), marginMs: Math.round((leaderTtl * 3) / 16) } } : {}),
      });
      if (s.adminToken) {
        process.stderr.write(`first start: the admin's API token (also in ${o.data}/admin.token, mode 0600; shown only now):\n`);
        process.stdout.write(`${s.adminToken}\n`);
        process.stderr.write(`  warren context add NAME --server ${s.url} --token TOKEN --ca ${o.data}/ca.pem\n`);
      }
      process.stderr.write(`ready: ${s.url}\n`);
      await untilSignal(() => s.close(), 'the server');
    });

  program
    .command('agent')
    .description("run a node agent: join the cluster (first start, with a join token), then run the server's jobs on this node")
    .requiredOption('--server <url...>', 'the server, https://HOST:PORT; with several servers (one leader), each of them (comma separated or repeated)')
    .requiredOption('--data <dir>', "the agent's directory ($WARREN_HOME of this node): its key and certificate, job runs, caches")
    .option('--name <name>', "the node's name (default: the host name)")
    .option('--token <token>', 'a join token (`warren token create`), needed on the first start only')
    .option('--ca <file>', "the cluster CA to trust the server with (the server's DATA/ca.pem); needed on the first start")
    .option('--labels <k=v,...>', 'node labels, matched by job constraints')
    .option('--cores <n>', 'cores the agent may use (default: all)')
    .option('--address <ip>', "where the other nodes reach this one: multinode (MPI) jobs' daemons and ranks (default: its first non-loopback address)")
    .option('--memory <size>', 'memory the agent may hand out (default: all)')
    .option('--health-check <command>', "a command (run with /bin/sh -c) that checks this node: exit 0 is healthy; a failure drains the node with its output as the reason, a pass undrains it (as Slurm's HealthCheckProgram)")
    .option('--health-interval <duration>', 'how often the health check runs (default 60s)')
    .option('--health-timeout <duration>', 'a health check running longer is killed and fails (default 30s)')
    .option('--retain <duration>', "remove finished workflows' run directories (logs, work directories, volumes) that ended this long ago, and cached images not used for this long, e.g. 7d (default: keep them, but for the disk budget)")
    .option('--disk-budget <size>', "keep this node's run directories and image cache under this size, e.g. 50GiB: least recently used images no task uses go first, then the oldest finished runs (never anything running work uses)")
    .action(async (o: { server: string[]; data: string; name?: string; token?: string; ca?: string; labels?: string; cores?: string; memory?: string; address?: string; healthCheck?: string; healthInterval?: string; healthTimeout?: string; retain?: string; diskBudget?: string }) => {
      const name = o.name ?? hostname().split('.')[0]!;
      let caPem: string | undefined;
      if (o.ca) {
        try {
          caPem = readFileSync(o.ca, 'utf8');
        } catch (e) {
          throw new WarrenError('CLI_BAD_OPTION', `cannot read --ca ${o.ca}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: "copy the server's DATA/ca.pem here" });
        }
      }
      let cores: number | undefined;
      if (o.cores !== undefined) {
        cores = Number(o.cores);
        if (!Number.isInteger(cores) || cores < 1) throw new WarrenError('CLI_BAD_OPTION', `--cores must be a whole number >= 1, not "${o.cores}"`);
      }
      let memoryBytes: number | undefined;
      if (o.memory !== undefined) {
        memoryBytes = parseSize(o.memory);
        if (memoryBytes === undefined || !(memoryBytes > 0)) throw new WarrenError('CLI_BAD_OPTION', `--memory takes a size such as 16GiB, not "${o.memory}"`);
      }
      const { mkdirSync, chmodSync } = await import('node:fs');
      mkdirSync(o.data, { recursive: true, mode: 0o711 });
      // Traversable (not listable) so that jobs running as their users reach their run
      // directories; keys, caches and secrets below it stay 0700/0600.
      chmodSync(o.data, 0o711);
      const { composeNodeAgent, loadAgentDaemon } = await import('../../agent/index.js');
      if (o.address !== undefined && isIP(o.address) === 0) throw new WarrenError('CLI_BAD_OPTION', `--address takes an IP address of this node, not "${o.address}"`, { hint: 'e.g. --address 10.0.0.12 (see `ip -br addr`)' });
      const agent = await composeNodeAgent({ name, home: o.data, ...(cores !== undefined ? { cores } : {}), ...(memoryBytes !== undefined ? { memoryBytes } : {}), labels: labels(o.labels), ...(o.address ? { addresses: [o.address] } : {}) });
      if ((o.healthInterval !== undefined || o.healthTimeout !== undefined) && o.healthCheck === undefined) throw new WarrenError('CLI_BAD_OPTION', '--health-interval and --health-timeout need --health-check COMMAND', { hint: 'e.g. --health-check "/usr/local/sbin/node-ok" --health-interval 5m' });
      if (o.healthCheck !== undefined && o.healthCheck.trim() === '') throw new WarrenError('CLI_BAD_OPTION', '--health-check needs a command', { hint: 'e.g. --health-check "/usr/local/sbin/node-ok"' });
      const healthIntervalMs = duration('--health-interval', o.healthInterval);
      const healthTimeoutMs = duration('--health-timeout', o.healthTimeout);
      if (healthIntervalMs !== undefined && healthIntervalMs < 1000) throw new WarrenError('CLI_BAD_OPTION', `--health-interval must be at least 1s, not "${o.healthInterval}"`);
      if (healthTimeoutMs !== undefined && healthTimeoutMs < 100) throw new WarrenError('CLI_BAD_OPTION', `--health-timeout must be at least 100ms, not "${o.healthTimeout}"`);
      const healthCheck = o.healthCheck !== undefined ? { command: o.healthCheck, ...(healthIntervalMs !== undefined ? { intervalMs: healthIntervalMs } : {}), ...(healthTimeoutMs !== undefined ? { timeoutMs: healthTimeoutMs } : {}) } : undefined;
      const retainMs = o.retain !== undefined ? Math.round(parseAge('--retain', o.retain, 1) * 1000) : null;
      let budgetBytes: number | null = null;
      if (o.diskBudget !== undefined) {
        const b = parseSize(o.diskBudget);
        if (b === undefined || !(b >= 1 << 20)) throw new WarrenError('CLI_BAD_OPTION', `--disk-budget takes a size of at least 1MiB, such as 50GiB or 500GB, not "${o.diskBudget}"`, { hint: 'e.g. --disk-budget 50GiB (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)' });
        budgetBytes = b;
      }
      const retention = retainMs !== null || budgetBytes !== null ? { retainMs, budgetBytes, imageCacheDir: (await import('../../image/index.js')).defaultImageCacheDir() } : undefined;
      const AgentDaemon = await loadAgentDaemon();
      const servers = o.server.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
      const daemon = new AgentDaemon({ serverUrl: servers.join(','), name, dataDir: o.data, labels: labels(o.labels), agent, ...(o.token ? { token: o.token } : {}), ...(caPem ? { caPem } : {}), ...(healthCheck ? { healthCheck } : {}), ...(retention ? { retention } : {}) });
      await daemon.start();
      process.stderr.write(`agent ${name}: joined ${servers.join(', ')}; running its jobs (Ctrl-C stops the agent and its jobs)\n`);
      await untilSignal(async () => {
        await daemon.stop();
        await agent.close();
        const { closeSpawner } = await import('../../runtime/index.js');
        await closeSpawner();
      }, `agent ${name}`);
    });
}
