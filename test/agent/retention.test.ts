// A node's retention with a real LocalAgent, real processes and files, a real image cache and
// a real store answering which workflows ended: finished runs past the retention and runs the
// server pruned go, images not used for a while go, the disk budget evicts least recently used
// images and then the oldest finished runs; nothing a running or queued task uses ever goes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalAgent, NodeRetention, removeTree, treeBytes } from '../../src/agent/index.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { SqliteStore, type WorkflowRecord } from '../../src/store/index.js';
import { ImageCache } from '../../src/image/index.js';
import { job } from '../engine/builders.js';
import { tempDir } from '../helpers.js';
import { Recorder, taskOf } from './contract.js';

const D = 24 * 3_600_000;

function record(id: string, status: WorkflowRecord['status'], endedAt: number | null): WorkflowRecord {
  return {
    id, name: id, file: null, status, spec: { name: id, dialect: 'v1', volumes: {}, jobs: {}, policy: {} } as never, options: {},
    runDir: `/nowhere/${id}`, createdAt: Date.now() - 30 * D, startedAt: Date.now() - 30 * D, endedAt, cancelRequested: false, lease: null, owner: null,
  };
}

/** An image in the cache, made through the cache's own API (as a pull leaves it), last used `ago` ms ago. */
function cacheImage(cache: ImageCache, uri: string, hex: string, bytes: number, ago: number): string {
  cache.ensure();
  const digest = `sha256:${hex.padEnd(64, '0')}`;
  const tmp = cache.tmpPath();
  mkdirSync(join(tmp, 'rootfs'), { recursive: true });
  writeFileSync(join(tmp, 'rootfs', 'payload'), Buffer.alloc(bytes, 1));
  const at = new Date(Date.now() - ago).toISOString();
  writeFileSync(join(tmp, 'image.json'), JSON.stringify({ schema: 1, digest, kind: 'rootfs', mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, blobs: [], sizeBytes: bytes, createdAt: at, source: uri }));
  cache.commitImage(tmp, digest);
  cache.putRef({ uri, platform: 'linux/amd64', digest, pulledAt: at, lastUsed: at });
  return digest;
}

test('node retention: finished runs past the retention, pruned runs and unused images go; running and queued work keeps everything it uses', { timeout: 60_000 }, async () => {
  const t = tempDir('warren-retain-');
  const home = join(t.dir, 'node');
  const store = new SqliteStore(join(t.dir, 'server.db'), { reserveBytes: 0 });
  // One core: a running sleep holds it, so a task with an image stays queued (and in use).
  const agent = new LocalAgent({ name: 'n1', home, cores: 1, process: createProcessRuntime() });
  const rec = new Recorder(agent);
  try {
    const now = Date.now();
    await store.createWorkflow(record('wfold', 'succeeded', now - 10 * D), []);
    await store.createWorkflow(record('wfyoung', 'failed', now - 2 * D), []);
    await store.createWorkflow(record('wflive', 'running', null), []);
    // Real runs leave real run directories: logs (20 kB each), work directories.
    for (const wf of ['wfold', 'wfyoung', 'wfpruned', 'wfrecentlygone']) agent.submit(taskOf(job('out', { command: ['/bin/sh', '-c', 'head -c 20000 /dev/zero; echo done >&2'] }), { workflowId: wf }));
    await rec.ended(4);
    for (const [id, e] of rec.exited) assert.equal(e.exitCode, 0, `${id}: ${JSON.stringify(e)}`);
    // wfpruned: the server no longer has it, untouched for an hour; wfrecentlygone: gone from
    // the server too, but touched a minute ago (kept until it has been idle for 10 minutes).
    const old = (now - 3_600_000) / 1000;
    for (const p of [join(home, 'runs', 'wfpruned'), join(home, 'runs', 'wfpruned', 'logs'), join(home, 'runs', 'wfpruned', 'logs', 'out.out'), join(home, 'runs', 'wfpruned', 'logs', 'out.err'), join(home, 'runs', 'wfpruned', 'work'), join(home, 'runs', 'wfpruned', 'work', 'out')]) {
      if (existsSync(p)) utimesSync(p, old, old);
    }
    // wflive: running now (a sleep), and a task with an image queued behind it.
    const live = taskOf(job('sleeper', { command: ['/bin/sh', '-c', 'echo started; exec sleep 60'] }), { workflowId: 'wflive' });
    agent.submit(live);
    const cache = new ImageCache(join(home, 'cache', 'images'));
    const queuedImage = 'docker://registry.example/queued:1';
    agent.submit(taskOf(job('boxed', { image: { uri: queuedImage }, command: ['true'] } as never), { workflowId: 'wfqueued' }));
    await waitFor(() => rec.started.some((s) => s.attemptId === live.attemptId), 10_000, 'the live task to start');
    assert.deepEqual([...agent.inUse().workflows].sort(), ['wflive', 'wfqueued']);
    assert.deepEqual([...agent.inUse().images], [queuedImage]);

    const stale = cacheImage(cache, 'docker://registry.example/stale:1', 'aa', 30_000, 10 * D);
    const queued = cacheImage(cache, queuedImage, 'bb', 30_000, 20 * D);
    const fresh = cacheImage(cache, 'docker://registry.example/fresh:1', 'cc', 30_000, 3_600_000);
    const logs: string[] = [];
    const lookups: string[][] = [];
    const r = new NodeRetention({
      home,
      policy: { retainMs: 7 * D, budgetBytes: null },
      inUse: () => agent.inUse(),
      lookup: async (ids) => {
        lookups.push(ids);
        return store.workflowEnds(ids);
      },
      imageCacheDir: cache.dir,
      log: (_l, m) => logs.push(m),
    });
    const rep = await r.sweep();
    assert.deepEqual(lookups.flat().sort(), ['wflive', 'wfold', 'wfpruned', 'wfrecentlygone', 'wfyoung'].sort(), 'asked the server about every run directory');
    assert.deepEqual(rep.runs.sort(), ['wfold', 'wfpruned']);
    assert.deepEqual(Object.fromEntries(rep.plan.runs.map((x) => [x.id, x.reason])), { wfold: 'retention', wfpruned: 'pruned' });
    assert.deepEqual(rep.images, [stale], 'the image not used for 10 days goes; the older one a queued task names stays');
    assert.ok(rep.bytesFreed >= 2 * 20_000 + 30_000, `bytes freed ${rep.bytesFreed}`);
    assert.deepEqual(readdirSync(join(home, 'runs')).sort(), ['wflive', 'wfrecentlygone', 'wfyoung']);
    assert.deepEqual(cache.list().map((i) => i.digest).sort(), [queued, fresh].sort());
    assert.ok(existsSync(join(home, 'runs', 'wflive', 'logs', 'sleeper.out')), 'the live run keeps its log');
    assert.match(logs.join('\n'), /retention: removed 2 run directories \((retention, pruned|pruned, retention)\) and 1 image\(s\)/);

    // The disk budget: under it already? No: shrink it until the young finished run must go,
    // after the unused image; the live run, the queued task's image and the recently gone run stay.
    const used = (await treeBytes(join(home, 'runs'))).bytes;
    const tight = new NodeRetention({ home, policy: { retainMs: null, budgetBytes: used - 1 }, inUse: () => agent.inUse(), lookup: (ids) => store.workflowEnds(ids), imageCacheDir: cache.dir });
    const b = await tight.sweep();
    assert.deepEqual(b.images, [fresh], 'the least recently used unused image goes first');
    assert.deepEqual(b.runs, ['wfyoung'], 'then the oldest finished run');
    assert.deepEqual(readdirSync(join(home, 'runs')).sort(), ['wflive', 'wfrecentlygone']);
    assert.deepEqual(cache.list().map((i) => i.digest), [queued]);
    assert.equal(b.plan.overBudget, true, 'what is left is in use or not known finished');

    // The server unreachable: nothing is known finished, nothing of the runs goes.
    const blind = new NodeRetention({ home, policy: { retainMs: 1, budgetBytes: 0 }, inUse: () => agent.inUse(), lookup: async () => null });
    assert.deepEqual((await blind.sweep()).runs, []);

    // A prune order from the server for a workflow with a task here: refused; once it ended, done.
    const f1 = await r.forget(['wflive', 'wfrecentlygone', '../escape', 'nosuch']);
    assert.deepEqual(f1.removed, ['wfrecentlygone']);
    assert.ok(existsSync(join(home, 'runs', 'wflive')));
    assert.match(logs.join('\n'), /wflive was pruned by the server but a task of it is on this node/);
    await agent.close();
    await rec.ended(6);
    assert.deepEqual((await r.forget(['wflive'])).removed, ['wflive']);
    assert.ok(!existsSync(join(home, 'runs', 'wflive')));
  } finally {
    await agent.close();
    await store.close();
    await removeTree(t.dir);
  }
});

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
