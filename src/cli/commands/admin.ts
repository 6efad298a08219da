// Cluster administration through a server context: `warren node|token|user ...`. These
// verbs need an admin's token; they parse and render, the server does the work.

import type { Command } from 'commander';
import { WarrenError, parseDuration } from '../../common/index.js';
import type { AdminClient, AuditEntry, CaStatusView } from '../../api/index.js';
import { commandGroup } from '../util.js';
import { expandRange } from '../../provision/index.js';
import { NODE_SUMMARY } from './inventory.js';
import { addTargetOptions, openAdmin, type TargetOpts } from '../client.js';

const iso = (t: number | null): string => (t === null ? '-' : new Date(t).toISOString().slice(0, 19).replace('T', ' '));

async function withAdmin<T>(o: TargetOpts, fn: (a: AdminClient) => Promise<T>): Promise<T> {
  const { admin, close } = await openAdmin(o);
  try {
    return await fn(admin);
  } finally {
    await close();
  }
}

/**
 * A time for --since/--until: an ISO 8601 date or date and time (UTC unless it names a zone:
 * 2026-12-01, 2026-12-01T14:30, 2026-12-01 14:30:00+01:00), or an age (30m, 24h, 7d: that long ago).
 */
export function parseTimeOption(flag: string, v: string, now = Date.now()): number {
  const hint = `give a date (2026-12-01), a date and time in UTC (2026-12-01T14:30) or with a zone (2026-12-01T14:30+01:00), or an age such as 30m, 24h or 7d`;
  const t = v.trim();
  if (/^[0-9]+(\.[0-9]+)?\s*[a-z]+$/i.test(t)) {
    const s = parseDuration(t);
    if (s === undefined || !(s >= 0)) throw new WarrenError('CLI_BAD_OPTION', `${flag} "${v}" is not a time or an age`, { hint });
    return now - Math.round(s * 1000);
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(t);
  if (!m) throw new WarrenError('CLI_BAD_OPTION', `${flag} "${v}" is not a time or an age`, { hint });
  const [, y, mo, d, h = '00', mi = '00', sec = '00', zone] = m;
  // The fields as given must exist (no 2026-02-30, no 25:00): JavaScript would roll them over.
  const probe = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec)));
  if (probe.getUTCFullYear() !== Number(y) || probe.getUTCMonth() !== Number(mo) - 1 || probe.getUTCDate() !== Number(d) || probe.getUTCHours() !== Number(h) || probe.getUTCMinutes() !== Number(mi) || probe.getUTCSeconds() !== Number(sec)) {
    throw new WarrenError('CLI_BAD_OPTION', `${flag} "${v}" is not a date that exists`, { hint });
  }
  const at = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${sec}${zone ? (zone === 'Z' ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone) : 'Z'}`);
  if (Number.isNaN(at)) throw new WarrenError('CLI_BAD_OPTION', `${flag} "${v}" is not a time`, { hint });
  if (at > now + 60_000 && flag === '--since') throw new WarrenError('CLI_BAD_OPTION', `${flag} ${v} is in the future`, { hint: 'give a time in the past' });
  return at;
}

function auditLine(e: AuditEntry): string {
  const details = Object.entries(e.details)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/[\s,]/.test(v) ? JSON.stringify(v.length > 120 ? v.slice(0, 117) + '...' : v) : v) : JSON.stringify(v)}`)
    .join(' ');
  return `${iso(e.at).padEnd(21)}${e.actor.padEnd(16)}${e.action.padEnd(16)}${(e.target ?? '-').padEnd(22)}${(e.source ?? '-').padEnd(18)}${e.result.padEnd(18)}${details}`;
}

export function register(program: Command): void {
  // `node add|set|list|status|delete` (the inventory side by side with the cluster) are in
  // ./inventory.ts; the cluster-only verbs are here. Every one takes a name or a range.
  const node = commandGroup(program, 'node', NODE_SUMMARY);
  addTargetOptions(
    node
      .command('drain')
      .description('stop placing new jobs on nodes (what runs there finishes)')
      .argument('<names>', 'node name or range, e.g. n[001-004]')
      .option('--reason <text>', 'why (shown by `warren node list`, kept in the audit log)'),
  ).action(async (names: string, o: TargetOpts & { reason?: string }) => {
    if (o.reason !== undefined && (o.reason.trim() === '' || o.reason.length > 1000)) throw new WarrenError('CLI_BAD_OPTION', '--reason takes a text of 1 to 1000 characters', { hint: 'e.g. --reason "DIMM errors, ticket 4711"' });
    await withAdmin(o, async (a) => {
      for (const name of expandRange(names)) {
        const v = await a.drain(name, true, o.reason?.trim());
        process.stderr.write(`node ${v.name} drained (${v.state}, ${v.running} running)\n`);
      }
    });
  });
  addTargetOptions(node.command('undrain').description('place jobs on drained nodes again').argument('<names>', 'node name or range')).action(async (names: string, o: TargetOpts) => {
    await withAdmin(o, async (a) => {
      for (const name of expandRange(names)) {
        const v = await a.drain(name, false);
        process.stderr.write(`node ${v.name} undrained (${v.state}, ${v.running} running)\n`);
      }
    });
  });
  addTargetOptions(node.command('revoke').description("revoke nodes' identities: their connections are closed and their next call refused").argument('<names>', 'node name or range')).action(async (names: string, o: TargetOpts) => {
    await withAdmin(o, async (a) => {
      for (const name of expandRange(names)) {
        await a.revokeNode(name);
        process.stderr.write(`node ${name} revoked: it must join again with a new token\n`);
      }
    });
  });

  const token = commandGroup(program, 'token', 'join tokens for nodes, and API tokens (admins)');
  addTargetOptions(
    token
      .command('create')
      .description('a one-time join token for `warren agent --token`')
      .option('--ttl <duration>', 'how long it stays valid (e.g. 10m, 1h)', '10m')
      .option('--uses <n>', 'how many nodes may join with it', '1')
      .option('--json', 'JSON output'),
  ).action(async (o: TargetOpts & { ttl: string; uses: string; json?: boolean }) => {
    const ttlSeconds = parseDuration(o.ttl);
    if (ttlSeconds === undefined || !(ttlSeconds > 0)) throw new WarrenError('CLI_BAD_OPTION', `--ttl takes a duration such as 10m or 1h, not "${o.ttl}"`);
    const uses = Number(o.uses);
    if (!Number.isInteger(uses) || uses < 1) throw new WarrenError('CLI_BAD_OPTION', `--uses must be a whole number >= 1, not "${o.uses}"`);
    const r = await withAdmin(o, (a) => a.createJoinToken({ ttlSeconds, uses }));
    if (o.json) process.stdout.write(JSON.stringify({ token: r.token, ...r.view }) + '\n');
    else {
      process.stdout.write(r.token + '\n');
      process.stderr.write(`join token ${r.view.id}: ${r.view.usesLeft} use(s), valid until ${iso(r.view.expiresAt)} UTC\n`);
    }
  });
  addTargetOptions(token.command('list').description('list the join tokens and API tokens (never their secrets)').option('--json', 'JSON output')).action(async (o: TargetOpts & { json?: boolean }) => {
    const ts = await withAdmin(o, (a) => a.tokens());
    if (o.json) {
      process.stdout.write(JSON.stringify(ts) + '\n');
      return;
    }
    process.stdout.write(`${'ID'.padEnd(14)}${'KIND'.padEnd(6)}${'USER'.padEnd(14)}${'CREATED'.padEnd(21)}${'EXPIRES'.padEnd(21)}USES LEFT\n`);
    for (const t of ts) process.stdout.write(`${t.id.padEnd(14)}${t.kind.padEnd(6)}${(t.user ?? '-').padEnd(14)}${iso(t.createdAt).padEnd(21)}${iso(t.expiresAt).padEnd(21)}${t.usesLeft ?? '-'}\n`);
  });
  addTargetOptions(token.command('revoke').description('revoke a token by its id').argument('<id>', 'token id (see `warren token list`)')).action(async (id: string, o: TargetOpts) => {
    await withAdmin(o, (a) => a.revokeToken(id));
    process.stderr.write(`token ${id} revoked\n`);
  });

  const user = commandGroup(program, 'user', 'Warren users, each mapped to a Unix account (admins)');
  addTargetOptions(
    user
      .command('add')
      .description("add a user and print the user's API token (shown once)")
      .argument('<name>', 'user name')
      .option('--unix-user <account>', 'the Unix account its jobs run as (default: the same name)')
      .option('--admin', 'an admin (sees every workflow, administers nodes, tokens and users)')
      .option('--token-ttl <duration>', "the life of the user's API token, e.g. 90d (default: until revoked)")
      .option('--json', 'JSON output'),
  ).action(async (name: string, o: TargetOpts & { unixUser?: string; admin?: boolean; json?: boolean; tokenTtl?: string }) => {
    let tokenTtlSeconds: number | undefined;
    if (o.tokenTtl !== undefined) {
      tokenTtlSeconds = parseDuration(o.tokenTtl);
      if (tokenTtlSeconds === undefined || !(tokenTtlSeconds >= 60)) throw new WarrenError('CLI_BAD_OPTION', `--token-ttl takes a duration of at least a minute, such as 90d, not "${o.tokenTtl}"`);
      tokenTtlSeconds = Math.round(tokenTtlSeconds);
    }
    const r = await withAdmin(o, (a) => a.addUser({ name, ...(o.unixUser ? { unixUser: o.unixUser } : {}), admin: o.admin === true, ...(tokenTtlSeconds ? { tokenTtlSeconds } : {}) }));
    if (o.json) process.stdout.write(JSON.stringify({ ...r.user, token: r.token }) + '\n');
    else {
      process.stdout.write(r.token + '\n');
      process.stderr.write(`user ${r.user.name} added (runs jobs as ${r.user.unixUser}${r.user.admin ? ', admin' : ''}); give them the token above: \`warren context add NAME --server URL --token TOKEN\`\n`);
    }
  });
  addTargetOptions(user.command('list').description('list the users').option('--json', 'JSON output')).action(async (o: TargetOpts & { json?: boolean }) => {
    const us = await withAdmin(o, (a) => a.users());
    if (o.json) {
      process.stdout.write(JSON.stringify(us) + '\n');
      return;
    }
    process.stdout.write(`${'NAME'.padEnd(16)}${'UNIX USER'.padEnd(16)}${'ADMIN'.padEnd(7)}CREATED\n`);
    for (const u of us) process.stdout.write(`${u.name.padEnd(16)}${u.unixUser.padEnd(16)}${(u.admin ? 'yes' : 'no').padEnd(7)}${iso(u.createdAt)}\n`);
  });
  addTargetOptions(user.command('remove').description('remove a user and revoke their API tokens (their workflows stay)').argument('<name>', 'user name')).action(async (name: string, o: TargetOpts) => {
    await withAdmin(o, (a) => a.removeUser(name));
    process.stderr.write(`user ${name} removed\n`);
  });

  const ca = commandGroup(program, 'ca', "the cluster's CA: status, rotate to a new CA, retire the old one (admins)");
  addTargetOptions(
    ca
      .command('status')
      .description('the CAs, the phase of a CA rotation, the nodes it waits for')
      .option('--bundle', 'print only the trust bundle (PEM): the CA file clients need now (`warren context add --ca`)')
      .option('--json', 'JSON output'),
  ).action(async (o: TargetOpts & { bundle?: boolean; json?: boolean }) => {
    const v = await withAdmin(o, (a) => a.caStatus());
    if (o.bundle) process.stdout.write(v.bundlePem);
    else if (o.json) process.stdout.write(JSON.stringify(v) + '\n');
    else process.stdout.write(caText(v));
  });
  addTargetOptions(
    ca
      .command('rotate')
      .description('begin a CA rotation: a new CA, trusted beside the old one until every node has a certificate from it; then the old one is retired by itself')
      .option('--trust-for <duration>', 'trust the new CA at least this long before it issues certificates (time to hand users the new CA file), e.g. 1h', '0s')
      .option('--json', 'JSON output'),
  ).action(async (o: TargetOpts & { trustFor: string; json?: boolean }) => {
    const secs = parseDuration(o.trustFor);
    if (secs === undefined || !(secs >= 0)) throw new WarrenError('CLI_BAD_OPTION', `--trust-for takes a duration such as 0s, 10m or 1h, not "${o.trustFor}"`);
    const v = await withAdmin(o, (a) => a.rotateCa({ trustForSeconds: Math.round(secs) }));
    if (o.json) process.stdout.write(JSON.stringify(v) + '\n');
    else {
      const fresh = v.cas.find((c) => c.role === 'new');
      process.stderr.write(
        `CA rotation started: the new CA (SHA-256 ${fresh?.fingerprint ?? '?'}) is trusted beside the old one.\n` +
          'Clients need both now: `warren ca status --bundle > ca.pem` (the server keeps it in DATA/ca.pem), then `warren context add NAME --server URL --token T --ca ca.pem`.\n' +
          'The rotation goes on by itself; `warren ca status` shows what it waits for.\n',
      );
    }
  });
  addTargetOptions(
    ca
      .command('retire')
      .description('retire the old CA of a rotation now (refused while a node holds a certificate from it)')
      .option('--force', 'retire it even so: those nodes must join again with a token')
      .option('--json', 'JSON output'),
  ).action(async (o: TargetOpts & { force?: boolean; json?: boolean }) => {
    const v = await withAdmin(o, (a) => a.retireCa({ force: o.force === true }));
    if (o.json) process.stdout.write(JSON.stringify(v) + '\n');
    else {
      const out = v.nodes.filter((n) => (n.state === 'ready' || n.state === 'down') && n.ca !== 'active').map((n) => n.name);
      process.stderr.write(`the old CA is retired: only SHA-256 ${v.cas[0]?.fingerprint ?? '?'} is trusted now${out.length ? `; ${out.join(', ')} must join again with a token` : ''}\n`);
    }
  });

  const audit = commandGroup(program, 'audit', 'the audit log: who did what, when, from where (admins)');
  addTargetOptions(
    audit
      .command('list')
      .description('list audit entries, oldest first: admin actions and actions on another user\'s behalf')
      .option('--since <time>', 'from this time: 2026-12-01, 2026-12-01T14:30 (UTC), ...+01:00, or an age: 24h, 7d (default: 7d)')
      .option('--until <time>', 'before this time (same forms)')
      .option('--user <name>', "only this user's actions (node:NAME: what a node's health check did)")
      .option('--action <action>', 'only this action (node.drain), or a family (node.)')
      .option('--limit <n>', 'at most this many entries (default 1000)')
      .option('--json', 'JSON output'),
  ).action(async (o: TargetOpts & { since?: string; until?: string; user?: string; action?: string; limit?: string; json?: boolean }) => {
    const now = Date.now();
    const since = parseTimeOption('--since', o.since ?? '7d', now);
    const until = o.until !== undefined ? parseTimeOption('--until', o.until, now) : undefined;
    if (until !== undefined && until <= since) throw new WarrenError('CLI_BAD_OPTION', `--until ${o.until} is not after --since ${o.since ?? '7d'}`, { hint: 'give --until a later time than --since' });
    let limit: number | undefined;
    if (o.limit !== undefined) {
      limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new WarrenError('CLI_BAD_OPTION', `--limit must be a whole number from 1 to 10000, not "${o.limit}"`, { hint: 'e.g. --limit 100; page with --since' });
    }
    if (o.action !== undefined && !/^[a-z][a-z.-]{0,63}$/.test(o.action)) throw new WarrenError('CLI_BAD_OPTION', `--action "${o.action}" is not an action`, { hint: 'e.g. node.drain, user.add, or a family such as node.' });
    const entries = await withAdmin(o, (a) => a.audit({ since, ...(until !== undefined ? { until } : {}), ...(o.user ? { user: o.user } : {}), ...(o.action ? { action: o.action } : {}), ...(limit ? { limit } : {}) }));
    if (o.json) {
      process.stdout.write(JSON.stringify(entries) + '\n');
      return;
    }
    if (entries.length === 0) {
      process.stderr.write(`no audit entries since ${iso(since)} UTC${o.user ? ` by ${o.user}` : ''}${o.action ? ` for ${o.action}` : ''}\n`);
      return;
    }
    process.stdout.write(`${'TIME (UTC)'.padEnd(21)}${'WHO'.padEnd(16)}${'ACTION'.padEnd(16)}${'TARGET'.padEnd(22)}${'FROM'.padEnd(18)}${'RESULT'.padEnd(18)}DETAILS\n`);
    for (const e of entries) process.stdout.write(auditLine(e) + '\n');
    const max = limit ?? 1000;
    if (entries.length >= max) process.stderr.write(`${entries.length} entries shown, the limit: the next ones with --since "${new Date(entries.at(-1)!.at).toISOString()}", or raise --limit\n`);
  });
}

function caText(v: CaStatusView): string {
  const lines: string[] = [];
  lines.push(
    v.phase === 'none'
      ? `trust domain ${v.trustDomain}: no CA rotation in progress${v.lastRetiredAt ? ` (the last one retired the old CA at ${iso(v.lastRetiredAt)} UTC)` : ''}`
      : `trust domain ${v.trustDomain}: CA rotation in phase ${v.phase} (${v.phase === 'trust' ? 'the new CA is trusted beside the old one' : 'the new CA issues certificates; the old one is still trusted'}) since ${iso(v.phaseChangedAt)} UTC, started ${iso(v.startedAt)} UTC`,
  );
  lines.push(`${'ROLE'.padEnd(8)}${'SIGNS'.padEnd(7)}${'NOT AFTER'.padEnd(21)}${'FINGERPRINT (SHA-256)'.padEnd(97)}SUBJECT`);
  for (const c of v.cas) lines.push(`${c.role.padEnd(8)}${(c.signing ? 'yes' : 'no').padEnd(7)}${iso(c.notAfter).padEnd(21)}${c.fingerprint.padEnd(97)}${c.subject}`);
  const behind = v.nodes.filter((n) => n.ca !== (v.phase === 'none' ? 'active' : 'new'));
  if (behind.length) lines.push(`nodes with a certificate from ${v.phase === 'none' ? 'another CA (they must join again)' : 'the old CA'}: ${behind.map((n) => `${n.name} (${n.state}${n.ca === 'unknown' ? ', not seen yet' : ''})`).join(', ')}`);
  if (v.phase !== 'none') lines.push(`next: ${v.next}`);
  return lines.join('\n') + '\n';
}
