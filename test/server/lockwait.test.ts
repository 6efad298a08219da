// A download that waits on another process's lock is said in the live view (onEvent) and
// recorded as an event of the workflow, so `warren status` shows it (issue 7 §5). The lock
// detection itself is tested in test/data/limits.test.ts; here the orchestrator's wiring,
// with the real orchestrator and SQLite store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LocalAgent } from '../../src/agent/index.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { Orchestrator } from '../../src/server/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { parseWorkflowText } from '../../src/workflow/index.js';
import { tempDir } from '../helpers.js';

test('a download waiting on a lock is shown live and recorded for warren status', { timeout: 30_000 }, async () => {
  const t = tempDir();
  const store = new SqliteStore(join(t.dir, 'warren.db'));
  try {
    const { workflow } = parseWorkflowText(
      `version: v1\nvolumes:\n  data:\n    reference: volume://user/ephemeral\n    ingress:\n      - source: {uri: "https://example.invalid/ref.fa"}\n        destination: {uri: "file://ref.fa"}\njobs:\n  use:\n    command: [/bin/true]\n    mounts:\n      data: {location: /data}\n`,
      'lock.yaml',
    );
    const agent = new LocalAgent({
      home: t.dir,
      cores: 1,
      process: createProcessRuntime(),
      transfers: {
        ingress: async (spec, _root, opts) => {
          opts.onProgress?.({ uri: spec.source.uri, bytes: 0, kind: 'waiting-lock', lock: { path: '/cache/locks/x.lock', pid: 4242, host: 'node7', waitedMs: 3000 } });
          opts.onProgress?.({ uri: spec.source.uri, bytes: 10, totalBytes: 10 });
          return { bytes: 10, sha256: '0'.repeat(64), cached: false } as never;
        },
        egress: async () => undefined as never,
      },
    });
    const orch = new Orchestrator({ store, agent, home: t.dir });
    const rec = await orch.accept(workflow!);
    const live: string[] = [];
    const bytes: number[] = [];
    const status = await orch.drive(rec.id, { onEvent: (_l, _k, m) => live.push(m), onProgress: (_k, p) => bytes.push(p.bytes) });
    assert.equal(status, 'succeeded');
    const said = live.find((m) => m.includes('process 4242 on node7 is downloading it'));
    assert.ok(said, `live view: ${live.join(' | ')}`);
    assert.match(said!, /^waiting 3 s for https:\/\/example\.invalid\/ref\.fa: /);
    assert.deepEqual(bytes, [10], 'byte progress still reaches the view; the lock wait is not a byte count');
    const events = await store.events(rec.id);
    assert.ok(events.some((e) => e.level === 'warn' && e.key === '@ingress/data' && e.message === said), 'recorded for warren status');
  } finally {
    await store.close();
    t.cleanup();
  }
});
