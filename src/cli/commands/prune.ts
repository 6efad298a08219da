// `warren prune`: remove finished workflows (their units, attempts, events and run
// directories) that ended before a cutoff, or the ones named. On a server's context it asks the
// server (admins; the nodes then delete their copies); else it prunes this machine's store and
// $WARREN_HOME/runs. It parses and renders: the work is src/server/retention.ts.

import type { Command } from 'commander';
import { WarrenError, formatBytes, formatDuration, parseDuration } from '../../common/index.js';
import type { PruneRequest, PruneView } from '../../api/index.js';
import { addTargetOptions, openAdmin, openClient, type TargetOpts } from '../client.js';
import { resolveTarget } from '../contexts.js';

const iso = (t: number): string => new Date(t).toISOString().slice(0, 19).replace('T', ' ');
const num = (n: number): string => n.toLocaleString('en');

/** `--older-than` (and `--retain`): a duration of at least 0 s, or CLI_BAD_OPTION with the forms. */
export function parseAge(flag: string, v: string, min = 0): number {
  const s = parseDuration(v);
  if (s === undefined || !(s >= min)) {
    throw new WarrenError('CLI_BAD_OPTION', `${flag} takes a duration${min > 0 ? ` of at least ${formatDuration(min)}` : ''}, not "${v}"`, {
      hint: `e.g. ${flag} 30d, 12h or 90m (units: ms, s, m, h, d, w; combined as 1d12h)`,
    });
  }
  return s;
}

/** Add one answer of a prune that stopped early (a server answers within a bound) to the total. */
function add(total: PruneView | null, r: PruneView): PruneView {
  if (!total) return r;
  const sum = (k: keyof PruneView) => (total[k] as number) + (r[k] as number);
  return {
    ...r,
    workflows: sum('workflows'),
    units: sum('units'),
    attempts: sum('attempts'),
    events: sum('events'),
    history: sum('history'),
    runDirs: sum('runDirs'),
    bytesFreed: sum('bytesFreed'),
    durationMs: sum('durationMs'),
    removed: [...total.removed, ...r.removed].slice(0, 1000),
    endedBefore: total.endedBefore,
  };
}

export function register(program: Command): void {
  addTargetOptions(
    program
      .command('prune')
      .description('remove finished workflows, their events, logs and run directories: those that ended before --older-than, or the ones named (never running work)')
      .argument('[ids...]', 'workflows to prune, whatever their age (ids or unique prefixes); each must have ended')
      .option('--older-than <duration>', 'every finished workflow that ended more than this long ago (e.g. 30d, 12h; 0: all of them)')
      .option('--dry-run', 'say what would be removed; remove nothing')
      .option('--json', 'JSON output')
      .option('--store <url>', 'store URL (this machine)'),
  ).action(async (ids: string[], o: TargetOpts & { olderThan?: string; dryRun?: boolean; json?: boolean }) => {
    if (ids.length > 0 && o.olderThan !== undefined) {
      throw new WarrenError('CLI_BAD_OPTION', 'give workflow ids or --older-than, not both', { hint: '`warren prune --older-than 30d` prunes by age; `warren prune ID...` prunes those workflows whatever their age' });
    }
    if (ids.length === 0 && o.olderThan === undefined) {
      throw new WarrenError('CLI_BAD_OPTION', 'say what to prune: --older-than DURATION, or workflow ids', { hint: 'e.g. `warren prune --older-than 30d --dry-run` to see what would go' });
    }
    if (ids.length > 1000) throw new WarrenError('CLI_BAD_OPTION', `at most 1000 workflow ids at a time, not ${ids.length}`, { hint: 'prune by age with --older-than, or in several calls' });
    const olderThanSec = o.olderThan !== undefined ? parseAge('--older-than', o.olderThan) : undefined;
    const req: PruneRequest = { ...(olderThanSec !== undefined ? { olderThanSec } : { ids }), ...(o.dryRun ? { dryRun: true } : {}) };
    const server = resolveTarget(o).kind === 'server';
    let total: PruneView | null = null;
    if (server) {
      const { admin, close } = await openAdmin(o);
      try {
        // A large prune answers in parts (interrupted): ask again until it is done.
        for (let r = await admin.prune(req); ; r = await admin.prune(req)) {
          total = add(total, r);
          if (!r.interrupted || r.dryRun) break;
          if (!o.json) process.stderr.write(`... ${num(total.workflows)} workflows pruned so far\n`);
        }
      } finally {
        await close();
      }
    } else {
      const { client } = await openClient(o);
      try {
        total = await (client as unknown as { prune(r: PruneRequest): Promise<PruneView> }).prune(req);
      } finally {
        await client.close();
      }
    }
    const r = total!;
    if (o.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
      return;
    }
    const cutoff = olderThanSec === undefined ? 'named' : olderThanSec === 0 ? 'that ended (--older-than 0: every finished one)' : `that ended before ${iso(r.endedBefore)} UTC (${o.olderThan} ago)`;
    const verb = r.dryRun ? 'would prune' : 'pruned';
    if (r.workflows === 0 && r.history === 0) process.stdout.write(`nothing to prune: no finished workflow ${cutoff}\n`);
    else {
      const rows = r.dryRun
        ? `${num(r.units)} units (jobs, tasks, transfers), ${num(r.attempts)} attempts, ${num(r.events)} events`
        : `${num(r.units)} units (jobs, tasks, transfers), ${num(r.attempts)} attempts, ${num(r.events)} events, ${num(r.history)} job history rows; ${num(r.runDirs)} run director${r.runDirs === 1 ? 'y' : 'ies'} (${formatBytes(r.bytesFreed)}) ${server ? 'on the server (the nodes remove their copies)' : 'on this machine'}`;
      process.stdout.write(`${verb} ${num(r.workflows)} workflow${r.workflows === 1 ? '' : 's'} ${cutoff}: ${rows}\n`);
    }
    if (r.keptRunning > 0) process.stdout.write(`kept ${num(r.keptRunning)} running or pending workflow${r.keptRunning === 1 ? '' : 's'} started before the cutoff: running work is never pruned (\`warren cancel ID\` first to prune one)\n`);
    if (r.keptLeased > 0) process.stdout.write(`kept ${num(r.keptLeased)} finished workflow${r.keptLeased === 1 ? '' : 's'} whose runner is still letting go: pruned next time\n`);
  });
}
