// Multinode (MPI) jobs on a real cluster: `warren server` and three `warren agent`s, each in
// its own network, UTS and mount namespace (its own host name, /tmp and /dev/shm), running a
// real MPI program (test/cluster/fixtures/allreduce.c, compiled here with Debian's mpicc)
// with OpenMPI 4.1 and MPICH 4.0 forced onto TCP. No ssh anywhere: the ranks' daemons are
// started by the agents, through Warren's launch hook (docs/mpi.md).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNetwork, netnsAvailable, type Network } from '../helpers/netns.js';
import { TestCluster } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(here, '..', '..', '..', 'test', 'cluster', 'fixtures', 'allreduce.c');

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const netOk = netnsAvailable();
const skip = netOk !== true ? String(netOk) : !has('mpicc.openmpi') || !has('mpicc.mpich') ? 'OpenMPI and MPICH are not installed (scripts/apt/mpi.txt)' : false;

interface Status {
  id: string;
  status: string;
  jobs: { name: string; status: string; attempts: number; exitCode?: number | null; message?: string | null }[];
}

describe('multinode MPI jobs across agents in network namespaces', { skip }, () => {
  let net: Network;
  let c: TestCluster;
  let bin = '';
  before(async () => {
    // Not under /tmp: each agent has its own.
    bin = mkdtempSync('/var/tmp/warren-mpi-bin-');
    execFileSync('mpicc.openmpi', ['-O2', '-o', join(bin, 'ar-ompi'), SOURCE]);
    execFileSync('mpicc.mpich', ['-O2', '-o', join(bin, 'ar-mpich'), SOURCE]);
    net = await createNetwork({ hosts: 3, prefix: 'mp' });
    // One core per node: every rank of a 2-node job is on another node than its peer.
    c = await TestCluster.start({ agents: 3, net, isolate: true, cores: 1 });
  });
  after(async () => {
    await c?.close();
    await net?.destroy();
    if (bin) rmSync(bin, { recursive: true, force: true });
  });

  /** Bytes in and out of each host's link (the veth inside its namespace). */
  async function linkBytes(): Promise<number[]> {
    return Promise.all(
      net.hosts.map(async (h) => {
        const r = await h.exec('cat', ['/sys/class/net/eth0/statistics/rx_bytes', '/sys/class/net/eth0/statistics/tx_bytes']);
        return r.stdout.split('\n').filter(Boolean).map(Number).reduce((a, b) => a + b, 0);
      }),
    );
  }

  async function runFlow(name: string, text: string): Promise<{ code: number | null; stdout: string; stderr: string; id: string; st: Status }> {
    const flow = join(c.dir, `${name}.yaml`);
    writeFileSync(flow, text);
    const r = await c.cli(['run', flow], { timeoutMs: 120_000 });
    const [w] = await c.json<{ id: string }[]>(['list']);
    const st = await c.json<Status>(['status', w!.id]);
    if (r.code !== 0) {
      // What the jobs said, for the assertion messages.
      for (const j of st.jobs) r.stderr += `\n--- ${j.name} stderr ---\n${(await c.cli(['logs', w!.id, j.name, '--err'])).stdout}`;
    }
    return { ...r, id: w!.id, st };
  }

  async function logs(id: string, job: string): Promise<string> {
    const r = await c.cli(['logs', id, job]);
    return r.stdout;
  }

  for (const [impl, prog, env] of [
    ["openmpi", "ar-ompi", "{OMPI_MCA_btl: \"tcp,self\", OMPI_MCA_pml: \"ob1\"}"],
    ['mpich', 'ar-mpich', '{UCX_TLS: "tcp,self,sm"}'],
  ] as const) {
    for (const nodes of [2, 3]) {
      test(`${impl}: an allreduce on ${nodes} agents, ranks on ${nodes} hosts, traffic over their links`, { timeout: 150_000 }, async () => {
        const before = await linkBytes();
        // 2 M doubles = 16 MB a round: rank traffic dwarfs the agents' heartbeats.
        const r = await runFlow(
          `${impl}-${nodes}`,
          `version: v1
jobs:
  ar:
    env: ${env}
    command: [${join(bin, prog)}, "2000000", "3"]
    resource: {cpu: {cores: 1}}
    multinode: {nodes: ${nodes}, implementation: ${impl}}
`,
        );
        assert.equal(r.code, 0, `${r.stderr}\n${c.serverLog.slice(-3000)}\n${c.agentLogs.join('\n').slice(-3000)}`);
        const out = await logs(r.id, 'ar');
        const lines = out.split('\n').filter((l) => l.startsWith('rank '));
        assert.equal(lines.length, nodes, out);
        const want = (nodes * (nodes + 1)) / 2;
        for (const l of lines) assert.match(l, new RegExp(`of ${nodes} on n[123] sum ${want}$`));
        const hosts = new Set(lines.map((l) => l.split(' ')[5]));
        assert.equal(hosts.size, nodes, `each rank on its own node: ${out}`);
        const after = await linkBytes();
        const moved = after.map((b, i) => b - before[i]!);
        const busy = moved.filter((b) => b > 20e6);
        assert.equal(busy.length, nodes, `rank traffic crossed ${nodes} links (bytes per link: ${moved.join(', ')})`);
      });
    }
  }

  test('bad input: more nodes than the cluster has is refused; a failing rank fails the job with its code and node; a missing launcher is named', { timeout: 150_000 }, async () => {
    const flow = join(c.dir, 'big.yaml');
    writeFileSync(flow, `version: v1\njobs:\n  big:\n    command: [${join(bin, 'ar-ompi')}]\n    multinode: {nodes: 5, implementation: openmpi}\n`);
    const big = await c.cli(['run', flow]);
    assert.equal(big.code, 2, big.stderr);
    assert.match(big.stderr, /AGENT_NOT_ENOUGH_NODES/);
    assert.match(big.stderr, /needs 5 nodes at once.*3 of the cluster's 3 nodes/);

    const fail = await runFlow(
      'fail',
      `version: v1
jobs:
  fail:
    env: {OMPI_MCA_btl: "tcp,self"}
    command: [${join(bin, 'ar-ompi')}, "1", "2", "0", "1", "7"]
    multinode: {nodes: 2, implementation: openmpi}
`,
    );
    assert.equal(fail.code, 1, fail.stderr);
    const job = fail.st.jobs.find((j) => j.name === 'fail')!;
    assert.equal(job.status, 'failed');
    assert.match(fail.stderr, /rank 1 on node n[123] exited with code 7/, fail.stderr);

    const missing = await runFlow(
      'missing',
      `version: v1
jobs:
  nolauncher:
    env: {PATH: /nowhere}
    command: [${join(bin, 'ar-mpich')}]
    multinode: {nodes: 2, implementation: mpich}
`,
    );
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /has no mpiexec\.hydra or mpiexec on its PATH \(\/nowhere\): multinode implementation mpich/, missing.stderr);

    const gasnet = join(c.dir, 'gasnet.yaml');
    writeFileSync(gasnet, `version: v1\njobs:\n  g:\n    command: [hostname]\n    multinode: {nodes: 2, implementation: gasnet}\n`);
    const g = await c.cli(['run', gasnet]);
    assert.equal(g.code, 2, g.stderr);
    assert.match(g.stderr, /gasnet\.yaml:5:\d+: .*implementation "gasnet" is not supported by Warren yet/);
  });

  for (const which of ['rank 0', 'another rank'] as const) {
    test(`kill -9 of the agent holding ${which}: the job fails on every node, no rank is left, and it is retried`, { timeout: 180_000 }, async () => {
      const flow = join(c.dir, `kill-${which.replace(' ', '')}.yaml`);
      // Attempt 1 runs long (60 rounds, 0.5 s apart); attempt 2 finishes at once.
      writeFileSync(
        flow,
        `version: v1
jobs:
  long:
    env: {OMPI_MCA_btl: "tcp,self"}
    command: [/bin/sh, -c, 'if [ "$WARREN_ATTEMPT" = 1 ]; then exec ${join(bin, 'ar-ompi')} 1 60 500; else exec ${join(bin, 'ar-ompi')} 1 1; fi']
    multinode: {nodes: 2, implementation: openmpi}
    policy:
      retry: {attempts: 2, backoff: 1s}
`,
      );
      const sub = await c.cli(['run', '--detach', flow]);
      assert.equal(sub.code, 0, sub.stderr);
      const id = sub.stdout.trim();
      // Both ranks run: the attempt's row names the gang's nodes (launcher first).
      const st1 = await c.until(
        'both ranks to run',
        async () => {
          const s = await c.json<Status>(['status', id]);
          const ps = spawnSync('pgrep', ['-fc', 'ar-ompi 1 60 500']);
          return { s, ranks: Number(ps.stdout.toString().trim() || '0') };
        },
        (v) => v.ranks >= 2,
        60_000,
      );
      const nodes = await nodesOf(id);
      assert.equal(nodes.length, 2, `gang nodes: ${JSON.stringify(st1.s)}`);
      const victim = which === 'rank 0' ? nodes[0]! : nodes[1]!;
      c.killAgent(Number(victim.slice(1)) - 1);
      // No rank of attempt 1 is left anywhere (every namespace shares the pid space we see).
      await c.until('every rank of attempt 1 to be gone', async () => Number(spawnSync('pgrep', ['-fc', 'ar-ompi 1 60 500']).stdout.toString().trim() || '0'), (n) => n === 0, 60_000);
      const st = await c.until('the workflow to end', () => c.json<Status>(['status', id]), (s) => s.status !== 'running' && s.status !== 'pending', 120_000);
      assert.equal(st.status, 'succeeded', `${JSON.stringify(st)}\n${c.serverLog.slice(-4000)}`);
      const job = st.jobs.find((j) => j.name === 'long')!;
      assert.equal(job.attempts, 2, 'retried once, as its policy says');
      const after = await nodesOf(id);
      assert.ok(!after.includes(victim), `the retry ran on the live nodes (${after.join(',')}), not on ${victim}`);
      // The killed agent comes back for the next test.
      await c.startAgent(Number(victim.slice(1)) - 1);
      await c.waitReady(3);
    });
  }

  /** The nodes of the workflow's last attempt of `long`, from its attempt row (launcher first). */
  async function nodesOf(id: string): Promise<string[]> {
    const d = await c.json<{ attempts?: { key: string; attempt: number; node: string | null }[] }>(['status', id]);
    const rows = (d.attempts ?? []).filter((a) => a.node);
    const last = rows.sort((a, b) => a.attempt - b.attempt).at(-1);
    return last?.node ? last.node.split(',') : [];
  }
});
