// `warren cache ls|prune`: the data download cache ($WARREN_HOME/cache/data).
import { join } from 'node:path';
import type { Command } from 'commander';
import { EXIT, WarrenError, formatBytes, parseDuration, parseSize, warrenHome } from '../../common/index.js';
import { DataCache } from '../../data/index.js';
import { commandGroup } from '../util.js';

export function cacheDir(): string {
  return join(warrenHome(), 'cache', 'data');
}

function badOption(message: string, hint: string): WarrenError {
  return new WarrenError('DATA_BAD_OPTION', message, { hint });
}

export function register(program: Command): void {
  const group = commandGroup(program, 'cache', 'inspect and prune the data download cache');

  group
    .command('ls')
    .description('list cached downloads (most recently used first)')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const cache = new DataCache(cacheDir());
      const entries = cache.list();
      if (o.json) {
        process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
        return;
      }
      if (entries.length === 0) {
        process.stdout.write(`cache ${cache.dir} is empty\n`);
        return;
      }
      const rows = entries.map((e) => [e.key.slice(0, 12), formatBytes(e.bytes), e.lastUsed.replace(/\.\d+Z$/, 'Z'), e.uri]);
      const head = ['KEY', 'SIZE', 'LAST USED', 'URI'];
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n';
      process.stdout.write(line(head) + rows.map(line).join(''));
      process.stdout.write(`${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${formatBytes(cache.size())} on disk in ${cache.dir}\n`);
    });

  group
    .command('prune')
    .description('remove cached downloads: all, those unused for a while, or the least recently used beyond a size')
    .option('--all', 'remove everything, including interrupted downloads')
    .option('--older-than <duration>', 'remove entries not used for this long (e.g. 7d, 12h)')
    .option('--max-size <size>', 'then remove least recently used entries until the cache is at most this big (e.g. 10GiB)')
    .action((o: { all?: boolean; olderThan?: string; maxSize?: string }) => {
      const opts: { all?: boolean; olderThanSec?: number; maxBytes?: number } = {};
      if (o.all) opts.all = true;
      if (o.olderThan !== undefined) {
        const s = parseDuration(o.olderThan);
        if (s === undefined) throw badOption(`--older-than '${o.olderThan}' is not a duration`, 'write e.g. 30d, 12h or 90m');
        opts.olderThanSec = s;
      }
      if (o.maxSize !== undefined) {
        const b = parseSize(o.maxSize);
        if (b === undefined) throw badOption(`--max-size '${o.maxSize}' is not a size`, 'write e.g. 10GiB, 500MB or a number of bytes');
        opts.maxBytes = b;
      }
      if (!o.all && o.olderThan === undefined && o.maxSize === undefined) {
        throw badOption('warren cache prune needs --all, --older-than or --max-size', 'e.g. `warren cache prune --older-than 30d` or `warren cache prune --max-size 20GiB`');
      }
      const cache = new DataCache(cacheDir());
      const r = cache.prune(opts);
      process.stdout.write(`removed ${r.removed} entr${r.removed === 1 ? 'y' : 'ies'}, freed ${formatBytes(r.bytes)}; ${formatBytes(cache.size())} left in ${cache.dir}\n`);
    });
}
