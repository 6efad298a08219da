// The node's retention policy (pure): what goes, in which order, and what never goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRetention, type ImageFacts, type RunDirFacts } from '../../src/agent/index.js';

const H = 3_600_000;
const D = 24 * H;
const now = 100 * D;

const run = (id: string, extra: Partial<RunDirFacts> = {}): RunDirFacts => ({ id, bytes: 100, active: false, server: { state: 'finished', endedAt: now - D }, lastActivity: now - D, ...extra });
const img = (digest: string, extra: Partial<ImageFacts> = {}): ImageFacts => ({ digest, bytes: 1000, lastUsed: now - D, inUse: false, ...extra });

test('retention: finished runs past the retention go, younger ones and live ones stay', () => {
  const p = planRetention(
    now,
    [
      run('old', { server: { state: 'finished', endedAt: now - 8 * D } }),
      run('young', { server: { state: 'finished', endedAt: now - 6 * D } }),
      run('live', { server: { state: 'live' }, lastActivity: now - 30 * D }),
      run('busy', { active: true, server: { state: 'finished', endedAt: now - 30 * D } }),
      run('unasked', { server: { state: 'unknown' }, lastActivity: now - 30 * D }),
    ],
    [],
    { retainMs: 7 * D, budgetBytes: null },
  );
  assert.deepEqual(p.runs, [{ id: 'old', reason: 'retention', bytes: 100 }]);
  assert.deepEqual(p.images, []);
  assert.equal(p.overBudget, false);
});

test('retention: runs the server no longer has go once idle a while, whatever the retention (even none)', () => {
  const p = planRetention(now, [run('pruned', { server: { state: 'gone' }, lastActivity: now - H }), run('fresh', { server: { state: 'gone' }, lastActivity: now - 60_000 }), run('busy', { active: true, server: { state: 'gone' } })], [], { retainMs: null, budgetBytes: null });
  assert.deepEqual(p.runs.map((r) => [r.id, r.reason]), [['pruned', 'pruned']]);
});

test('retention: images not used for longer than the retention go unless a task uses them', () => {
  const p = planRetention(now, [], [img('a', { lastUsed: now - 10 * D }), img('b', { lastUsed: now - 10 * D, inUse: true }), img('c', { lastUsed: now - D })], { retainMs: 7 * D, budgetBytes: null });
  assert.deepEqual(p.images.map((i) => [i.digest, i.reason]), [['a', 'retention']]);
});

test('disk budget: least recently used unused images first, then the oldest finished runs, until under the budget', () => {
  const runs = [
    run('r-oldest', { bytes: 300, server: { state: 'finished', endedAt: now - 5 * D } }),
    run('r-mid', { bytes: 300, server: { state: 'finished', endedAt: now - 3 * D } }),
    run('r-new', { bytes: 300, server: { state: 'finished', endedAt: now - 1 * D } }),
    run('r-live', { bytes: 5000, server: { state: 'live' } }),
  ];
  const images = [img('i-lru', { bytes: 1000, lastUsed: now - 4 * D }), img('i-used', { bytes: 1000, lastUsed: now - 9 * D, inUse: true }), img('i-recent', { bytes: 1000, lastUsed: now - H })];
  // Total 5000 + 900 + 3000 = 8900. Budget 7200: i-lru (1000), i-recent (1000) is not needed yet... 7900 > 7200, so i-recent too (6900).
  const p = planRetention(now, runs, images, { retainMs: null, budgetBytes: 7200 });
  assert.deepEqual(p.images.map((i) => [i.digest, i.reason]), [['i-lru', 'budget'], ['i-recent', 'budget']]);
  assert.deepEqual(p.runs, []);
  assert.equal(p.bytesBefore, 8900);
  assert.equal(p.bytesAfter, 6900);
  // Budget 6500: the images are not enough, the oldest finished runs go next (oldest end first).
  const q = planRetention(now, runs, images, { retainMs: null, budgetBytes: 6500 });
  assert.deepEqual(q.runs.map((r) => [r.id, r.reason]), [['r-oldest', 'budget'], ['r-mid', 'budget']]);
  assert.equal(q.bytesAfter, 6300);
  assert.equal(q.overBudget, false);
  // Budget 1000: everything allowed goes, and it says it is still over (the live run and the used image stay).
  const z = planRetention(now, runs, images, { retainMs: null, budgetBytes: 1000 });
  assert.deepEqual(z.runs.map((r) => r.id), ['r-oldest', 'r-mid', 'r-new']);
  assert.deepEqual(z.images.map((i) => i.digest), ['i-lru', 'i-recent']);
  assert.equal(z.bytesAfter, 6000);
  assert.equal(z.overBudget, true);
});

test('disk budget: never a run a task uses, a live or unknown run, or an image in use', () => {
  const p = planRetention(
    now,
    [run('busy', { active: true, bytes: 10_000 }), run('live', { server: { state: 'live' }, bytes: 10_000 }), run('unknown', { server: { state: 'unknown' }, bytes: 10_000 })],
    [img('used', { inUse: true, bytes: 10_000 })],
    { retainMs: 1, budgetBytes: 0 },
  );
  assert.deepEqual(p.runs, []);
  assert.deepEqual(p.images, []);
  assert.equal(p.overBudget, true);
});

test('retention and budget together: what the retention takes counts toward the budget; ties are broken by id', () => {
  const p = planRetention(
    now,
    [run('b', { bytes: 500, server: { state: 'finished', endedAt: now - 2 * D } }), run('a', { bytes: 500, server: { state: 'finished', endedAt: now - 2 * D } }), run('x', { bytes: 500, server: { state: 'finished', endedAt: now - 10 * D } })],
    [],
    { retainMs: 7 * D, budgetBytes: 600 },
  );
  assert.deepEqual(p.runs.map((r) => [r.id, r.reason]), [['x', 'retention'], ['a', 'budget']]);
  assert.equal(p.bytesAfter, 500);
});
