// Leader takeover after `kill -9`: two `warren server`s on one private PostgreSQL
// (test/helpers/pg.ts), 2 agents (in network namespaces when the machine allows it), default
// leader timers (lease 8 s, renewed every 2 s, a follower tries every 1 s). Each run kills
// the leader with SIGKILL and measures, from the kill:
//   leader  until the other server's GET /health says role leader;
//   task    until a workflow submitted to it (as soon as it leads) has its job running on a
//           node (the job's own first `date +%s%N`).
// The killed server is restarted (it comes back as a follower) before the next run.
// Compared with Slurm's default SlurmctldTimeout (120 s): how long a backup slurmctld waits
// for the primary before it takes over.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpClient } from '../../src/api/index.js';
import { TestCluster } from '../../test/cluster/harness.js';
import { createNetwork, netnsAvailable, type Network } from '../../test/helpers/netns.js';
import { startPostgres } from '../../test/helpers/pg.js';

export const SLURMCTLD_TIMEOUT_S = 120;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TakeoverResult {
  runs: { leaderMs: number; taskMs: number }[];
}

export async function takeover(o: { runs: number; log?: (s: string) => void }): Promise<TakeoverResult> {
  const log = o.log ?? (() => {});
  const pg = await startPostgres();
  const net: Network | null = netnsAvailable() === true ? await createNetwork({ hosts: 2, prefix: 'tk' }) : null;
  let c: TestCluster | null = null;
  try {
    c = await TestCluster.start({ agents: 2, servers: 2, ...(net ? { net } : {}), store: pg.url, cores: 2, serverArgs: ['--lost-after', '5m', '--grace', '15s', '--heartbeat', '2s', '--lease-ttl', '15s'] });
    const ca = readFileSync(c.caFile, 'utf8');
    const runs: TakeoverResult['runs'] = [];
    for (let i = 0; i < o.runs; i++) {
      const roles = await Promise.all([0, 1].map((k) => c!.health(k).then((h) => h.body.role, () => 'down')));
      const leader = roles.indexOf('leader');
      if (leader < 0) throw new Error(`no leader before run ${i + 1}: ${roles.join(', ')}`);
      const other = 1 - leader;
      // A moment after a renewal or not: where in its 2 s renew period the kill falls varies from run to run.
      await sleep(300 + Math.random() * 2000);
      const t0 = Date.now();
      c.killServer(leader);
      for (;;) {
        const h = await c.health(other, 1000).catch(() => null);
        if (h?.body.role === 'leader') break;
        if (Date.now() - t0 > 60_000) throw new Error('no takeover within 60 s');
        await sleep(25);
      }
      const leaderMs = Date.now() - t0;
      const mark = join(c.dir, `ran-${i}`);
      const client = new HttpClient({ url: c.urlOf(other), token: c.adminToken, caPem: ca });
      try {
        await client.submit({ source: `version: v1\njobs:\n  probe:\n    command: [/bin/sh, -c, 'date +%s%N > ${mark}']\n`, filename: `probe-${i}.yaml` });
      } finally {
        await client.close();
      }
      while (!existsSync(mark) || readFileSync(mark, 'utf8').trim() === '') {
        if (Date.now() - t0 > 120_000) throw new Error('the probe did not run within 120 s');
        await sleep(20);
      }
      const taskMs = Number(BigInt(readFileSync(mark, 'utf8').trim()) / 1_000_000n) - t0;
      runs.push({ leaderMs, taskMs });
      log(`run ${i + 1}/${o.runs}: leader after ${(leaderMs / 1000).toFixed(2)} s, a task ran after ${(taskMs / 1000).toFixed(2)} s`);
      // The killed one back, as a follower; both agents on the new leader before the next kill.
      await c.startServer(leader);
      for (let t = Date.now(); ; ) {
        const h = await c.health(leader).catch(() => null);
        const nodes = await c.json<{ state: string }[]>(['node', 'list'], { context: c.contextOf(other) }).catch(() => []);
        if (h?.body.role === 'follower' && nodes.filter((n) => n.state === 'ready').length === 2) break;
        if (Date.now() - t > 60_000) throw new Error('the cluster did not settle after the restart');
        await sleep(200);
      }
    }
    return { runs };
  } finally {
    await c?.close();
    await net?.destroy();
    await pg.destroy();
  }
}

export function stats(xs: number[]): { median: number; worst: number } {
  const s = [...xs].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median, worst: s[s.length - 1]! };
}
