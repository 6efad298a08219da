// `warren server` (a cluster's head) and `warren agent` (each compute node): parse the
// options, start the composed server (src/server/serve.ts) or node agent (src/agent), and
// run until SIGINT/SIGTERM.

import { isIP } from 'node:net';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { LOG_FORMATS, LOG_LEVELS, WarrenError, createLogger, formatDuration, parseDuration, parseSize, type LogFormat, type Logger, type LogLevel } from '../../common/index.js';
import type { ServerStatusView, ReadyView } from '../../api/index.js';
import { addTargetOptions, openAdmin, type TargetOpts } from '../client.js';
import { parseAge } from './prune.js';

function duration(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = parseDuration(v);
  if (s === undefined || !(s > 0)) throw new WarrenError('CLI_BAD_OPTION', `${flag} takes a duration such as 500ms, 5s or 10m, not "${v}"`);
  return Math.round(s * 1000);
}

function listenAddr(v: string, flag = '--listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new WarrenError('CLI_BAD_OPTION', `${flag} takes ADDRESS:PORT (e.g. 0.0.0.0:8443 or 127.0.0.1:0), not "${v}"`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** `--labels k=v,k2=v2` (also `warren install systemd --agent --labels`). */
export function parseLabels(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!v) return out;
  for (const kv of v.split(',')) {
    const m = /^([A-Za-z0-9_.\/-]+)=([^,]*)$/.exec(kv.trim());
    if (!m) throw new WarrenError('CLI_BAD_OPTION', `--labels takes k=v,k2=v2, and "${kv}" is not k=v`, { hint: 'e.g. --labels rack=a1,gpu=a100 (names: letters, digits, _ . / -)' });
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** The logger of `--log-format` and `--log-level` (JSON lines or readable lines, on stderr). */
function loggerOf(o: { logFormat?: string; logLevel?: string }): { log: Logger; json: boolean } {
  const format = o.logFormat ?? 'text';
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw new WarrenError('CLI_BAD_OPTION', `--log-format takes ${LOG_FORMATS.join(' or ')}, not "${format}"`, { hint: 'json: one JSON object per line (for a log shipper); text: readable lines' });
  const level = o.logLevel ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new WarrenError('CLI_BAD_OPTION', `--log-level takes ${LOG_LEVELS.join(', ')}, not "${level}"`, { hint: 'debug adds a line per attempt started and ended' });
  return { log: createLogger({ format: format as LogFormat, level: level as LogLevel }), json: format === 'json' };
}

/** A line for a person on stderr: as it is in text mode, a log line in JSON mode. */
function say(l: { log: Logger; json: boolean }, msg: string, fields?: Record<string, unknown>): void {
  if (l.json) l.log('info', msg, fields);
  else process.stderr.write(`${msg}\n`);
}

/** Run until a signal; then close (a second signal quits at once). */
function untilSignal(close: () => Promise<void>, what: string, tell: (msg: string) => void = (m) => void process.stderr.write(`${m}\n`)): Promise<void> {
  return new Promise((resolve) => {
    let n = 0;
    const on = (sig: NodeJS.Signals): void => {
      if (++n > 1) process.exit(130);
      tell(`${sig}: stopping ${what}`);
      close().then(resolve, resolve);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export function register(program: Command): void {
  const server = program
    .command('server')
    .description('run a cluster server: the HTTPS API for users, mutual TLS for node agents, state in PostgreSQL')
    // Not a commander requiredOption: `warren server status` would need it too.
    .option('--data <dir>', 'the server\'s directory (required): its CA (ca/), ca.pem for clients, admin.token (first start)')
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
    .option('--log-format <format>', 'json: one JSON object per line ({"time","level","msg",...}); text: readable lines', 'text')
    .option('--log-level <level>', 'debug, info, warn or error (debug: a line per attempt started and ended)', 'info')
    .option('--metrics-listen <addr:port>', 'also serve /metrics, /health and /ready over plain HTTP here, without a token unless --metrics-token-file (e.g. 127.0.0.1:9464)')
    .option('--metrics-token-file <file>', 'a file holding the bearer token that GET /metrics takes (besides an admin\'s API token)')
    .option('--metrics-refresh <duration>', 'how often the store\'s counts of jobs, workflows and nodes are refreshed for /metrics (default 5s)')
    .option('--retain <duration>', 'prune finished workflows (their units, attempts, events, logs) that ended this long ago, e.g. 30d; running work is never pruned (default: keep them forever)')
    .option('--provision [addr:port]', 'also run the boot service for network-booted nodes (plain HTTP: iPXE scripts, node images, overlays; docs/provisioning.md), default 0.0.0.0:9873')
    .option('--provision-url <url>', 'http://ADDRESS:PORT the nodes reach the boot service at (default: the address they asked; for dnsmasq the --provision or --dhcp address)')
    .option('--provision-nginx <mode>', 'auto: nginx (when installed) serves the node images, Warren the rest; on: nginx required; off: Warren serves everything', 'auto')
    .option('--boot-token-ttl <duration>', "the life of the join token minted for each boot of a node (one use, bound to the node's name; default 10m)")
    .option('--dhcp <iface[,first-last]>', "run dnsmasq for DHCP and TFTP on this interface (the inventory's nodes get their addresses; a range also serves other machines), e.g. eth1 or eth1,10.0.0.100-10.0.0.200")
    .action(async (o: { data?: string; listen: string; store?: string; trustDomain: string; name?: string; host?: string; heartbeat?: string; grace?: string; lostAfter?: string; stopAfter?: string; leaseTtl?: string; leaderTtl?: string; advertise?: string; logFormat?: string; logLevel?: string; metricsListen?: string; metricsTokenFile?: string; metricsRefresh?: string; retain?: string; provision?: string | true; provisionUrl?: string; provisionNginx: string; bootTokenTtl?: string; dhcp?: string }) => {
      if (!o.data) throw new WarrenError('CLI_BAD_OPTION', 'warren server needs --data DIR (the server\'s directory)', { hint: 'e.g. warren server --data /var/lib/warren --store postgres://warren@db/warren' });
      const data = o.data;
      const lg = loggerOf(o);
      const { host, port } = listenAddr(o.listen);
      const metricsListen = o.metricsListen !== undefined ? listenAddr(o.metricsListen, '--metrics-listen') : undefined;
      let metricsToken: string | undefined;
      if (o.metricsTokenFile !== undefined) {
        try {
          metricsToken = readFileSync(o.metricsTokenFile, 'utf8').trim();
        } catch (e) {
          throw new WarrenError('CLI_BAD_OPTION', `cannot read --metrics-token-file ${o.metricsTokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'put the token (e.g. `openssl rand -hex 32`) in a file readable by the server, mode 0600' });
        }
        if (metricsToken.length < 16 || /\s/.test(metricsToken)) throw new WarrenError('CLI_BAD_OPTION', `the token in --metrics-token-file ${o.metricsTokenFile} must be at least 16 characters without spaces`, { hint: 'make one with `openssl rand -hex 32 > FILE`' });
      }
      const metricsRefreshMs = duration('--metrics-refresh', o.metricsRefresh);
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
      const provisionFlags = o.provisionUrl !== undefined || o.bootTokenTtl !== undefined || o.dhcp !== undefined || o.provisionNginx !== 'auto';
      if (provisionFlags && o.provision === undefined) throw new WarrenError('CLI_BAD_OPTION', '--provision-url, --provision-nginx, --boot-token-ttl and --dhcp are options of the boot service: they need --provision', { hint: 'add --provision (default 0.0.0.0:9873)' });
      let provision: import('../../server/boot/index.js').ProvisionOptions | undefined;
      if (o.provision !== undefined) {
        const boot = await import('../../server/boot/index.js');
        const at = o.provision === true ? { host: '0.0.0.0', port: boot.DEFAULT_PROVISION_PORT } : listenAddr(o.provision, '--provision');
        if (!['auto', 'on', 'off'].includes(o.provisionNginx)) throw new WarrenError('CLI_BAD_OPTION', `--provision-nginx takes auto, on or off, not "${o.provisionNginx}"`);
        if (o.provisionUrl !== undefined && !/^http:\/\/[A-Za-z0-9.:[\]-]+$/.test(o.provisionUrl)) throw new WarrenError('CLI_BAD_OPTION', `--provision-url takes http://ADDRESS:PORT, not "${o.provisionUrl}"`, { hint: 'the boot service is plain HTTP (PXE firmware cannot check the CA), e.g. http://10.0.0.1:9873' });
        const ttl = duration('--boot-token-ttl', o.bootTokenTtl);
        if (ttl !== undefined && ttl > 7 * 24 * 3600 * 1000) throw new WarrenError('CLI_BAD_OPTION', `--boot-token-ttl ${o.bootTokenTtl} is longer than a week`, { hint: 'a boot token is for joining now: e.g. --boot-token-ttl 10m' });
        provision = {
          ...at,
          nginx: o.provisionNginx as 'auto' | 'on' | 'off',
          ...(o.provisionUrl ? { url: o.provisionUrl } : {}),
          ...(ttl !== undefined ? { tokenTtlSeconds: Math.max(1, Math.round(ttl / 1000)) } : {}),
          ...(o.dhcp !== undefined ? { dhcp: boot.parseDhcpOption(o.dhcp) } : {}),
        };
      }
      const { startServer } = await import('../../server/serve.js');
      const s = await startServer({
        ...(provision ? { provision } : {}),
        host,
        port,
        dataDir: data,
        log: lg.log,
        ...(metricsListen ? { metricsListen } : {}),
        ...(metricsToken ? { metricsToken } : {}),
        ...(metricsRefreshMs ? { metricsRefreshMs } : {}),
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
        say(lg, `first start: the admin's API token (also in ${data}/admin.token, mode 0600; shown only now):`);
        process.stdout.write(`${s.adminToken}\n`);
        say(lg, `  warren context add NAME --server ${s.url} --token TOKEN --ca ${data}/ca.pem`);
      }
      say(lg, `ready: ${s.url}`, { url: s.url, ...(s.metricsUrl ? { metricsUrl: s.metricsUrl } : {}), ...(s.bootUrl ? { bootUrl: s.bootUrl } : {}) });
      await untilSignal(() => s.close(), 'the server', (m) => say(lg, m));
    });

  addTargetOptions(
    server
      .command('status')
      .description("the server of the context: leader or follower, its database, agents, queue and version (exit 1 when it is not ready)")
      .option('--json', 'JSON output'),
  ).action(async (o: TargetOpts & { json?: boolean }) => {
    await serverStatus(o);
  });

  program
    .command('agent')
    .description("run a node agent: join the cluster (first start, with a join token), then run the server's jobs on this node")
    .requiredOption('--server <url...>', 'the server, https://HOST:PORT; with several servers (one leader), each of them (comma separated or repeated)')
    .requiredOption('--data <dir>', "the agent's directory ($WARREN_HOME of this node): its key and certificate, job runs, caches")
    .option('--name <name>', "the node's name (default: the host name)")
    .option('--token <token>', 'a join token (`warren token create`), needed on the first start only (default $WARREN_JOIN_TOKEN)')
    .option('--ca <file>', "the cluster CA to trust the server with (the server's DATA/ca.pem); needed on the first start")
    .option('--labels <k=v,...>', 'node labels, matched by job constraints')
    .option('--cores <n>', 'cores the agent may use (default: all)')
    .option('--address <ip>', "where the other nodes reach this one: multinode (MPI) jobs' daemons and ranks (default: its first non-loopback address)")
    .option('--memory <size>', 'memory the agent may hand out (default: all)')
    .option('--health-check <command>', "a command (run with /bin/sh -c) that checks this node: exit 0 is healthy; a failure drains the node with its output as the reason, a pass undrains it (as Slurm's HealthCheckProgram)")
    .option('--health-interval <duration>', 'how often the health check runs (default 60s)')
    .option('--health-timeout <duration>', 'a health check running longer is killed and fails (default 30s)')
    .option('--log-format <format>', 'json: one JSON object per line ({"time","level","msg",...}); text: readable lines', 'text')
    .option('--log-level <level>', 'debug, info, warn or error (debug: a line per attempt assigned, started and ended)', 'info')
    .option('--retain <duration>', "remove finished workflows' run directories (logs, work directories, volumes) that ended this long ago, and cached images not used for this long, e.g. 7d (default: keep them, but for the disk budget)")
    .option('--disk-budget <size>', "keep this node's run directories and image cache under this size, e.g. 50GiB: least recently used images no task uses go first, then the oldest finished runs (never anything running work uses)")
    .action(async (o: { server: string[]; data: string; name?: string; token?: string; ca?: string; labels?: string; cores?: string; memory?: string; address?: string; healthCheck?: string; healthInterval?: string; healthTimeout?: string; logFormat?: string; logLevel?: string; retain?: string; diskBudget?: string }) => {
      const lg = loggerOf(o);
      const name = o.name ?? hostname().split('.')[0]!;
      // From the environment (a systemd unit's EnvironmentFile=): not on the command line, which every local user can read.
      const token = o.token ?? (process.env.WARREN_JOIN_TOKEN || undefined);
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
      const agent = await composeNodeAgent({ name, home: o.data, ...(cores !== undefined ? { cores } : {}), ...(memoryBytes !== undefined ? { memoryBytes } : {}), labels: parseLabels(o.labels), ...(o.address ? { addresses: [o.address] } : {}) });
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
      const daemon = new AgentDaemon({ serverUrl: servers.join(','), name, dataDir: o.data, labels: parseLabels(o.labels), agent, log: lg.log.child({ node: name }), ...(token ? { token } : {}), ...(caPem ? { caPem } : {}), ...(healthCheck ? { healthCheck } : {}), ...(retention ? { retention } : {}) });
      await daemon.start();
      say(lg, `agent ${name}: joined ${servers.join(', ')}; running its jobs (Ctrl-C stops the agent and its jobs)`, { node: name });
      await untilSignal(async () => {
        await daemon.stop();
        await agent.close();
        const { closeSpawner } = await import('../../runtime/index.js');
        await closeSpawner();
      }, `agent ${name}`, (m) => say(lg, m, { node: name }));
    });
}

/** `warren server status`: ask the context's server; exit 1 (SERVER_NOT_READY) when it is not ready. */
async function serverStatus(o: TargetOpts & { json?: boolean }): Promise<void> {
  const { server, close } = await openAdmin(o);
  let view: ServerStatusView | ReadyView;
  let detail: string | null = null;
  try {
    try {
      view = await server.serverStatus();
    } catch (e) {
      // The details need the store (the token is checked there): without it, /ready still answers.
      const code = (e as WarrenError).code ?? '';
      if (/^(AUTH_|CLI_|API_TLS|API_BAD_URL)/.test(code)) throw e;
      try {
        view = await server.ready();
      } catch {
        throw e;
      }
      detail = (e as Error).message;
    }
  } finally {
    await close();
  }
  if (o.json) process.stdout.write(JSON.stringify(detail ? { ...view, detailsError: detail } : view) + '\n');
  else process.stdout.write(renderStatus(server.where, view, detail));
  if (!view.ready) {
    throw new WarrenError('SERVER_NOT_READY', `the server at ${server.where} is not ready: ${view.messages.join('; ') || 'see above'}`, {
      hint: !view.store.reachable ? `check the database (${view.store.kind}): the server retries by itself once it answers` : 'wait a few seconds (a follower takes the leadership within seconds of the leader going away), then ask again',
    });
  }
}

function renderStatus(where: string, v: ServerStatusView | ReadyView, detail: string | null): string {
  const full = 'agents' in v ? v : null;
  const lines: string[] = [];
  const row = (k: string, val: string) => lines.push(`  ${k.padEnd(11)}${val}`);
  lines.push(`server ${where}${full ? ` (${full.id})` : ''}`);
  row('ready', v.ready ? 'yes' : 'no');
  row('role', `${v.role}, term ${v.term}${v.role === 'follower' ? `, leader ${v.leaderUrl ?? 'none now'}` : ''}`);
  row('database', `${v.store.kind}, ${v.store.reachable ? `reachable (${v.store.latencyMs.toFixed(1)} ms)` : `NOT reachable: ${v.store.error ?? 'no answer'}`}`);
  if (full?.agents) {
    const a = full.agents;
    row('agents', `${a.ready} ready, ${a.down} down, ${a.lost} lost, ${a.revoked} revoked; ${a.drained} drained (${a.total} in all${a.source === 'store' ? ', as the store has them' : ''})`);
  } else row('agents', 'unknown');
  if (full?.queue) {
    const q = full.queue;
    const oldest = q.oldestWaitingSeconds === null ? (v.role === 'leader' ? 'none waiting' : 'oldest waiting: known on the leader') : `oldest waiting ${formatDuration(q.oldestWaitingSeconds)}`;
    row('queue', `${q.pending} pending, ${q.ready} ready, ${q.starting} starting, ${q.running} running; ${oldest}`);
  } else row('queue', 'unknown');
  if (full?.workflows) row('workflows', `${full.workflows.running} running, ${full.workflows.pending} pending`);
  row('version', v.version);
  for (const m of v.messages) lines.push(`  - ${m}`);
  if (detail) lines.push(`  (agents and queue not shown: ${detail})`);
  return lines.join('\n') + '\n';
}
