// Join tokens and the cluster's first start: tokens stored only as hashes, one use by
// default, refused when used up or expired, consumed atomically under concurrency; the
// admin token created once in a 0600 file.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createJoinToken, consumeJoinToken, hashToken, MemoryTokenStore, initCluster, readAdminToken, isAdminToken, ADMIN_TOKEN_FILE, CA_KEY_FILE } from '../../src/mesh/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { tempDir } from '../helpers.js';
import { TD } from './helpers.js';

const code = (c: string) => (e: unknown) => isWarrenError(e) && e.code === c;

let t: { dir: string; cleanup: () => void };
before(() => {
  t = tempDir('warren-mesh-tokens-');
});
after(() => t.cleanup());

test('a token is 32 random bytes in base64url, shown once and stored only as its SHA-256', async () => {
  const store = new MemoryTokenStore();
  const { token, record } = await createJoinToken(store, { ttlSeconds: 600, createdBy: 'admin', now: 1_000_000 });
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(Buffer.from(token, 'base64url').length, 32);
  assert.equal(record.hash, hashToken(token));
  assert.equal(record.id, record.hash.slice(0, 12));
  assert.equal(record.usesLeft, 1);
  assert.equal(record.expiresAt, 1_000_000 + 600_000);
  assert.equal(record.createdBy, 'admin');
  const stored = await store.list();
  assert.equal(stored.length, 1);
  assert.ok(!JSON.stringify(stored).includes(token), 'the token itself is not stored');
  const other = await createJoinToken(store, { ttlSeconds: 600, createdBy: 'admin' });
  assert.notEqual(other.token, token);
});

test('one use by default: a reused token is refused; --uses N allows N', async () => {
  const store = new MemoryTokenStore();
  const now = Date.now();
  const one = await createJoinToken(store, { ttlSeconds: 600, createdBy: 'admin', now });
  const used = await consumeJoinToken(store, one.token, now + 1);
  assert.equal(used.usesLeft, 0);
  await assert.rejects(consumeJoinToken(store, one.token, now + 2), code('MESH_TOKEN_USED_UP'));
  const three = await createJoinToken(store, { ttlSeconds: 600, uses: 3, createdBy: 'admin', now });
  for (let i = 2; i >= 0; i--) assert.equal((await consumeJoinToken(store, three.token, now + 1)).usesLeft, i);
  await assert.rejects(consumeJoinToken(store, three.token, now + 1), code('MESH_TOKEN_USED_UP'));
  await assert.rejects(consumeJoinToken(store, 'not-a-token', now), code('MESH_TOKEN_UNKNOWN'));
});

test('an expired token is refused, and expiry does not use it up', async () => {
  const store = new MemoryTokenStore();
  const now = Date.now();
  const tk = await createJoinToken(store, { ttlSeconds: 600, createdBy: 'admin', now });
  await assert.rejects(consumeJoinToken(store, tk.token, now + 600_000), code('MESH_TOKEN_EXPIRED'));
  await assert.rejects(consumeJoinToken(store, tk.token, now + 3600_000), code('MESH_TOKEN_EXPIRED'));
  assert.equal((await store.get(tk.record.hash))?.usesLeft, 1);
  assert.equal(await store.delete(tk.record.id), true);
  await assert.rejects(consumeJoinToken(store, tk.token, now), code('MESH_TOKEN_UNKNOWN'));
});

test('consumption is atomic: 20 concurrent joins with a 5-use token, exactly 5 succeed', async () => {
  const store = new MemoryTokenStore();
  const tk = await createJoinToken(store, { ttlSeconds: 600, uses: 5, createdBy: 'admin' });
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => consumeJoinToken(store, tk.token)));
  const ok = results.filter((r) => r.status === 'fulfilled');
  assert.equal(ok.length, 5);
  assert.deepEqual(ok.map((r) => (r as PromiseFulfilledResult<{ usesLeft: number }>).value.usesLeft).sort(), [0, 1, 2, 3, 4]);
  for (const r of results) if (r.status === 'rejected') assert.ok(code('MESH_TOKEN_USED_UP')(r.reason));
});

test('bad --uses and --ttl are usage errors', async () => {
  const store = new MemoryTokenStore();
  await assert.rejects(createJoinToken(store, { ttlSeconds: 600, uses: 0, createdBy: 'a' }), (e: unknown) => code('MESH_TOKEN_USES_INVALID')(e) && (e as { exitCode: number }).exitCode === 2);
  await assert.rejects(createJoinToken(store, { ttlSeconds: 600, uses: 1.5, createdBy: 'a' }), code('MESH_TOKEN_USES_INVALID'));
  await assert.rejects(createJoinToken(store, { ttlSeconds: 0, createdBy: 'a' }), code('MESH_TOKEN_TTL_INVALID'));
  await assert.rejects(createJoinToken(store, { ttlSeconds: 30 * 24 * 3600, createdBy: 'a' }), code('MESH_TOKEN_TTL_INVALID'));
  assert.equal((await store.list()).length, 0);
});

test('first start: CA and admin token created under DIR (0700, 0600), the token returned once', async () => {
  const dir = join(t.dir, 'server');
  const first = await initCluster(dir, { trustDomain: TD });
  assert.equal(first.caCreated, true);
  assert.ok(first.adminToken && first.adminToken.length === 43);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, ADMIN_TOKEN_FILE)).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, CA_KEY_FILE)).mode & 0o777, 0o600);
  assert.equal(readFileSync(join(dir, ADMIN_TOKEN_FILE), 'utf8').trim(), first.adminToken);
  const second = await initCluster(dir, { trustDomain: TD });
  assert.equal(second.caCreated, false);
  assert.equal(second.adminToken, undefined, 'printed once: not returned again');
  assert.equal(second.ca.certPem, first.ca.certPem);
  assert.equal(readAdminToken(dir), first.adminToken);
  assert.equal(isAdminToken(dir, first.adminToken), true);
  assert.equal(isAdminToken(dir, first.adminToken.slice(1) + 'A'), false);
  assert.throws(() => readAdminToken(join(t.dir, 'none')), code('MESH_ADMIN_TOKEN_NOT_FOUND'));
});
