// The shared store contract: every Store implementation must pass this suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiTokenRecord, AttemptRecord, NodeRecord, Store, UserRecord, WorkflowRecord } from '../../src/store/index.js';
import type { UnitSnapshot } from '../../src/engine/index.js';
import { inventoryContract } from './contract-inventory.js';
import { consumeJoinToken, createJoinToken, hashToken, type TokenRecord } from '../../src/mesh/index.js';

const unit = (key: string, extra: Partial<UnitSnapshot> = {}): UnitSnapshot => ({
  key, kind: 'job', job: key.split('[')[0]!, task: null, state: 'pending', attempt: 0,
  exitCode: null, reason: null, message: null, startedAt: null, endedAt: null, ...extra,
});

export function record(id: string, createdAt = Date.now()): WorkflowRecord {
  return {
    id, name: 'demo', file: '/tmp/demo.yaml', status: 'pending',
    spec: { name: 'demo', dialect: 'v1', volumes: {}, jobs: {}, policy: {} },
    options: { failFast: false }, runDir: `/tmp/runs/${id}`, createdAt, startedAt: null, endedAt: null,
    cancelRequested: false, lease: null, owner: null,
  };
}

/** An attempt record with the fields a test does not care about left empty. */
export function att(workflowId: string, key: string, attempt: number, extra: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    workflowId, key, attempt, attemptId: `${workflowId}/${key}/${attempt}`, term: null, cgroup: null, node: null,
    startedAt: null, endedAt: null, exitCode: null, signal: null, reason: null, message: null, pid: null, ...extra,
  };
}

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

const user = (name: string, extra: Partial<UserRecord> = {}): UserRecord => ({ name, unixUser: `u_${name}`, admin: false, createdAt: 1_000, ...extra });

/** An API token record for `secret` (its hash and id as the server makes them). */
export function apiToken(secret: string, userName: string, extra: Partial<ApiTokenRecord> = {}): ApiTokenRecord {
  const hash = hashToken(secret);
  return { id: hash.slice(0, 12), hash, user: userName, createdAt: 2_000, expiresAt: null, revoked: false, lastUsedAt: null, ...extra };
}

const joinToken = (secret: string, extra: Partial<TokenRecord> = {}): TokenRecord => {
  const hash = hashToken(secret);
  return { hash, id: hash.slice(0, 12), createdBy: 'admin', createdAt: 1_000, expiresAt: 100_000, usesLeft: 1, ...extra };
};

export function node(name: string, extra: Partial<NodeRecord> = {}): NodeRecord {
  return {
    name,
    info: { name, cores: 64, memoryBytes: 256 * 2 ** 30, gpus: [{ index: 0, model: 'H100', memoryBytes: 80 * 2 ** 30 }], labels: { rack: 'r1' }, platform: 'linux/amd64', containers: true, agentVersion: '0.1.0', protocol: { major: 1, minor: 0 } },
    state: 'ready', drained: false, drainReason: null, drainedBy: null, certSerial: 'ab01', certCa: null, joinedAt: 5_000, lastSeenAt: null, stateChangedAt: 5_000, ...extra,
  };
}

export function storeContract(name: string, open: () => Promise<Store>, uniq: () => string): void {
  test(`${name}: create, read back, update in batches`, async () => {
    const s = await open();
    try {
      const id = uniq();
      const units = [unit('a'), ...Array.from({ length: 100 }, (_, i) => unit(`arr[${i}]`, { task: i }))];
      await s.createWorkflow(record(id), units);
      const got = await s.getWorkflow(id);
      assert.equal(got?.name, 'demo');
      assert.deepEqual(got?.spec.dialect, 'v1');
      assert.deepEqual((await s.units(id)).map((u) => u.key), units.map((u) => u.key));
      await s.write({
        units: [{ workflowId: id, unit: unit('a', { state: 'succeeded', attempt: 1, exitCode: 0, reason: 'exit', startedAt: 1000, endedAt: 3000 }) }],
        attempts: [att(id, 'a', 1, { startedAt: 1000, endedAt: 3000, exitCode: 0, reason: 'exit', term: 3, cgroup: '/sys/fs/cgroup/warren/a', node: 'n01', pid: 77 })],
        events: [{ workflowId: id, at: 5, key: 'a', level: 'warn', message: 'hello' }],
        workflows: [{ id, patch: { status: 'running', startedAt: 999, cancelRequested: true } }],
      });
      const a = (await s.units(id))[0]!;
      assert.equal(a.state, 'succeeded');
      assert.equal(a.exitCode, 0);
      assert.equal(a.endedAt, 3000);
      const w = (await s.getWorkflow(id))!;
      assert.equal(w.status, 'running');
      assert.equal(w.startedAt, 999);
      assert.equal(w.cancelRequested, true);
      assert.equal(w.lease, null);
      assert.deepEqual(await s.attempts(id, 'a'), [att(id, 'a', 1, { startedAt: 1000, endedAt: 3000, exitCode: 0, reason: 'exit', term: 3, cgroup: '/sys/fs/cgroup/warren/a', node: 'n01', pid: 77 })]);
      assert.deepEqual((await s.events(id)).map((e) => e.message), ['hello']);
      assert.deepEqual(await s.events(id, { afterAt: 5 }), []);
      assert.deepEqual((await s.jobHistory('a')).slice(0, 1), [2]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: attempts upsert keeps the start time`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('x')]);
      await s.write({ attempts: [att(id, 'x', 1, { startedAt: 10, pid: 5, cgroup: '/cg/x' })] });
      await s.write({ attempts: [att(id, 'x', 1, { endedAt: 20, exitCode: 1, reason: 'exit', message: 'boom' })] });
      const [a] = await s.attempts(id);
      assert.deepEqual([a!.startedAt, a!.endedAt, a!.exitCode, a!.message, a!.pid, a!.cgroup], [10, 20, 1, 'boom', 5, '/cg/x']);
    } finally {
      await s.close();
    }
  });

  test(`${name}: id prefixes resolve, ambiguous ones are an error, unknown is undefined`, async () => {
    const s = await open();
    try {
      const base = uniq();
      await s.createWorkflow(record(`${base}x1`), []);
      await s.createWorkflow(record(`${base}x2`), []);
      assert.equal((await s.getWorkflow(`${base}x1`))?.id, `${base}x1`);
      await assert.rejects(s.getWorkflow(`${base}x`), (e: Error & { code?: string }) => e.code === 'STORE_AMBIGUOUS_ID');
      assert.equal(await s.getWorkflow(`${base}zz`), undefined);
      const list = await s.listWorkflows({ limit: 1000 });
      assert.ok(list.some((w) => w.id === `${base}x2`));
    } finally {
      await s.close();
    }
  });

  test(`${name}: data survives reopening`, async () => {
    const id = uniq();
    const s1 = await open();
    await s1.createWorkflow(record(id), [unit('k')]);
    await s1.write({ units: [{ workflowId: id, unit: unit('k', { state: 'failed', attempt: 2 }) }] });
    await s1.close();
    const s2 = await open();
    try {
      assert.equal((await s2.units(id))[0]!.state, 'failed');
    } finally {
      await s2.close();
    }
  });

  test(`${name}: the run lease: taken from nobody (term 1), extended by its owner, refused to others until it expires, then taken over (term 2)`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('a')]);
      const a = await s.acquireRunLease(id, 'hostA:100:aa', 1000, 10_000);
      assert.deepEqual(a, { ok: true, lease: { owner: 'hostA:100:aa', term: 1, expiresAt: 11_000 } });
      assert.deepEqual((await s.getWorkflow(id))!.lease, { owner: 'hostA:100:aa', term: 1, expiresAt: 11_000 });
      // its owner again: extends, same term
      assert.deepEqual(await s.acquireRunLease(id, 'hostA:100:aa', 1000, 10_500), { ok: true, lease: { owner: 'hostA:100:aa', term: 1, expiresAt: 11_500 } });
      // another owner before expiry: refused, told who holds it
      assert.deepEqual(await s.acquireRunLease(id, 'hostB:200:bb', 1000, 11_499), { ok: false, current: { owner: 'hostA:100:aa', term: 1, expiresAt: 11_500 } });
      assert.equal(await s.renewRunLease(id, 'hostA:100:aa', 1, 1000, 11_000), true);
      assert.equal((await s.getWorkflow(id))!.lease!.expiresAt, 12_000);
      // at expiry it is free: taken over, term 2; the old owner can no longer renew or release it
      assert.deepEqual(await s.acquireRunLease(id, 'hostB:200:bb', 5000, 12_000), { ok: true, lease: { owner: 'hostB:200:bb', term: 2, expiresAt: 17_000 } });
      assert.equal(await s.renewRunLease(id, 'hostA:100:aa', 1, 1000, 12_001), false);
      await s.releaseRunLease(id, 'hostA:100:aa', 1);
      assert.equal((await s.getWorkflow(id))!.lease!.owner, 'hostB:200:bb');
      assert.equal(await s.renewRunLease(id, 'hostB:200:bb', 1, 1000, 12_001), false, 'the right owner with a stale term');
      // released: nobody holds it; the next owner gets term 3 at once
      await s.releaseRunLease(id, 'hostB:200:bb', 2);
      assert.equal((await s.getWorkflow(id))!.lease, null);
      assert.deepEqual(await s.acquireRunLease(id, 'hostA:101:cc', 1000, 12_002), { ok: true, lease: { owner: 'hostA:101:cc', term: 3, expiresAt: 13_002 } });
      await assert.rejects(s.acquireRunLease(`${id}nope`, 'x:1:y', 1000, 0), code('RUN_NOT_FOUND'));
    } finally {
      await s.close();
    }
  });

  test(`${name}: many owners racing for one lease: exactly one wins`, async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
    try {
      const id = uniq();
      await stores[0]!.createWorkflow(record(id), []);
      const now = Date.now();
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.acquireRunLease(id, `host:${i}:r${i}`, 60_000, now)),
      );
      const winners = results.filter((r) => r.ok);
      assert.equal(winners.length, 1);
      const w = winners[0]! as { ok: true; lease: { owner: string; term: number } };
      assert.equal(w.lease.term, 1);
      for (const r of results) if (!r.ok) assert.deepEqual(r.current, { owner: w.lease.owner, term: 1, expiresAt: now + 60_000 });
      // and again once it expired: one new owner, term 2
      const later = now + 60_000;
      const again = await Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.acquireRunLease(id, `other:${i}:q${i}`, 1000, later)));
      assert.equal(again.filter((r) => r.ok).length, 1);
      assert.equal((await stores[1]!.getWorkflow(id))!.lease!.term, 2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  test(`${name}: a batch fenced with an old term writes nothing; with the current term it writes`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('a'), unit('b')]);
      const old = await s.acquireRunLease(id, 'h:1:old', 100, 1000);
      assert.ok(old.ok);
      await s.write({ fence: { workflowId: id, term: 1 }, units: [{ workflowId: id, unit: unit('a', { state: 'running', attempt: 1 }) }] });
      const neu = await s.acquireRunLease(id, 'h:2:new', 100, 2000);
      assert.ok(neu.ok && neu.lease.term === 2);
      await assert.rejects(
        s.write({
          fence: { workflowId: id, term: 1 },
          units: [{ workflowId: id, unit: unit('a', { state: 'failed', attempt: 1, exitCode: 9 }) }, { workflowId: id, unit: unit('b', { state: 'running', attempt: 1 }) }],
          attempts: [att(id, 'a', 1, { endedAt: 5, exitCode: 9, reason: 'exit' })],
          events: [{ workflowId: id, at: 5, key: 'a', level: 'error', message: 'stale' }],
          workflows: [{ id, patch: { status: 'failed', endedAt: 5 } }],
        }),
        (e: Error & { code?: string; details?: Record<string, unknown> }) => e.code === 'STORE_FENCED' && e.details?.current === 2 && /term 1/.test(e.message),
      );
      assert.deepEqual((await s.units(id)).map((u) => u.state), ['running', 'pending']);
      assert.deepEqual(await s.attempts(id), []);
      assert.deepEqual(await s.events(id), []);
      assert.equal((await s.getWorkflow(id))!.status, 'pending');
      await s.write({ fence: { workflowId: id, term: 2 }, units: [{ workflowId: id, unit: unit('b', { state: 'running', attempt: 1 }) }] });
      assert.deepEqual((await s.units(id)).map((u) => u.state), ['running', 'running']);
      await assert.rejects(s.write({ fence: { workflowId: `${id}zz`, term: 0 }, events: [] }), code('STORE_FENCED'));
    } finally {
      await s.close();
    }
  });

  test(`${name}: an ended attempt is never changed again; another attempt id takes a row over only with a newer term`, async () => {
    const s = await open();
    try {
      const id = uniq();
      await s.createWorkflow(record(id), [unit('a'), unit('b')]);
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A1', term: 1, startedAt: 10, pid: 50 })] });
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A1', term: 1, endedAt: 20, exitCode: 0, reason: 'exit' })] });
      // a second report of the end (a stale runner, a duplicate message) and a late start record
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A1', term: 1, endedAt: 99, exitCode: 137, signal: 'SIGKILL', reason: 'signal' })] });
      await s.write({ attempts: [att(id, 'a', 1, { attemptId: 'A2', term: 5, startedAt: 200, pid: 60 })] });
      assert.deepEqual(await s.attempts(id, 'a'), [att(id, 'a', 1, { attemptId: 'A1', term: 1, startedAt: 10, pid: 50, endedAt: 20, exitCode: 0, reason: 'exit' })]);
      // not ended: an older or equal term with another id is refused, a newer one replaces it (not keeping the old pid)
      await s.write({ attempts: [att(id, 'b', 1, { attemptId: 'B1', term: 2, startedAt: 10, pid: 70, cgroup: '/cg/b1', node: 'n1' })] });
      await s.write({ attempts: [att(id, 'b', 1, { attemptId: 'Bx', term: 1, endedAt: 30, exitCode: 1, reason: 'exit' })] });
      assert.equal((await s.attempts(id, 'b'))[0]!.endedAt, null);
      await s.write({ attempts: [att(id, 'b', 1, { attemptId: 'B2', term: 3, startedAt: 40 })] });
      assert.deepEqual(await s.attempts(id, 'b'), [att(id, 'b', 1, { attemptId: 'B2', term: 3, startedAt: 40 })]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: a succeeded unit never changes again (and its run counts once in the history)`, async () => {
    const s = await open();
    try {
      const id = uniq();
      const job = `hist${uniq()}`;
      await s.createWorkflow(record(id), [unit(job)]);
      const ok = unit(job, { state: 'succeeded', attempt: 1, exitCode: 0, reason: 'exit', startedAt: 1000, endedAt: 2000 });
      await s.write({ units: [{ workflowId: id, unit: ok }] });
      await s.write({ units: [{ workflowId: id, unit: unit(job, { state: 'pending', attempt: 0 }) }] });
      await s.write({ units: [{ workflowId: id, unit: unit(job, { state: 'failed', attempt: 2, exitCode: 1 }) }] });
      await s.write({ units: [{ workflowId: id, unit: { ...ok, endedAt: 9000 } }] });
      assert.deepEqual(await s.units(id), [ok]);
      assert.deepEqual(await s.jobHistory(job), [1]);
    } finally {
      await s.close();
    }
  });

  // Cluster mode (schema v3). The database is shared by the tests of a run: every name is unique.

  test(`${name}: users: added, read back, listed by name; a taken name is AUTH_USER_EXISTS; removed once`, async () => {
    const s = await open();
    try {
      const u = uniq();
      const alice = user(`alice${u}`, { unixUser: 'alice', admin: true, createdAt: 1_700_000_000_000 });
      const bob = user(`bob${u}`);
      await s.addUser(bob);
      await s.addUser(alice);
      assert.deepEqual(await s.getUser(alice.name), alice);
      assert.deepEqual(await s.getUser(bob.name), bob);
      assert.equal(await s.getUser(`carol${u}`), undefined);
      assert.deepEqual((await s.listUsers()).filter((x) => x.name.endsWith(u)), [alice, bob]);
      await assert.rejects(s.addUser(user(alice.name, { unixUser: 'mallory', admin: false })), (e: Error & { code?: string; hint?: string }) =>
        e.code === 'AUTH_USER_EXISTS' && e.message.includes(alice.name) && !!e.hint);
      assert.deepEqual(await s.getUser(alice.name), alice, 'the existing user is unchanged');
      assert.equal(await s.removeUser(bob.name), true);
      assert.equal(await s.removeUser(bob.name), false);
      assert.equal(await s.getUser(bob.name), undefined);
      assert.deepEqual((await s.listUsers()).filter((x) => x.name.endsWith(u)), [alice]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: API tokens: found by hash whatever their state, listed per user, revoked by id, touched; unknown ones are not found`, async () => {
    const s = await open();
    try {
      const u = uniq();
      await s.addUser(user(`ann${u}`));
      await s.addUser(user(`ben${u}`));
      const t1 = apiToken(`secret-1-${u}`, `ann${u}`, { createdAt: 10 });
      const t2 = apiToken(`secret-2-${u}`, `ann${u}`, { createdAt: 20, expiresAt: 1_000_000 });
      const t3 = apiToken(`secret-3-${u}`, `ben${u}`, { createdAt: 15 });
      for (const t of [t2, t1, t3]) await s.insertApiToken(t);
      assert.deepEqual(await s.findApiToken(hashToken(`secret-1-${u}`)), t1);
      assert.deepEqual(await s.findApiToken(t2.hash), t2);
      assert.equal(await s.findApiToken(hashToken(`secret-9-${u}`)), undefined);
      assert.deepEqual(await s.listApiTokens(`ann${u}`), [t1, t2]);
      assert.deepEqual(await s.listApiTokens(`ben${u}`), [t3]);
      assert.deepEqual(await s.listApiTokens(`nobody${u}`), []);
      const all = (await s.listApiTokens()).filter((t) => t.user.endsWith(u));
      assert.deepEqual(all, [t1, t3, t2], 'oldest first');
      // revoked: still found (so the server can say why it is refused), marked revoked; again: still true
      assert.equal(await s.revokeApiToken(t1.id), true);
      assert.deepEqual(await s.findApiToken(t1.hash), { ...t1, revoked: true });
      assert.equal(await s.revokeApiToken(t1.id), true);
      assert.equal(await s.revokeApiToken(`${t1.id}x`), false);
      assert.equal(await s.revokeApiToken('000000000000'), false);
      assert.equal((await s.findApiToken(t2.hash))!.revoked, false, 'only that token');
      // touched: lastUsedAt, never moved back; an unknown id changes nothing
      await s.touchApiToken(t2.id, 5_000);
      assert.equal((await s.findApiToken(t2.hash))!.lastUsedAt, 5_000);
      await s.touchApiToken(t2.id, 4_000);
      assert.equal((await s.findApiToken(t2.hash))!.lastUsedAt, 5_000);
      await s.touchApiToken(t2.id, 6_000);
      assert.equal((await s.findApiToken(t2.hash))!.lastUsedAt, 6_000);
      await s.touchApiToken('ffffffffffff', 7_000);
      assert.equal((await s.findApiToken(t3.hash))!.lastUsedAt, null);
    } finally {
      await s.close();
    }
  });

  test(`${name}: API tokens refused: of an unknown user (AUTH_USER_NOT_FOUND), a hash or id already stored (STORE_DUPLICATE)`, async () => {
    const s = await open();
    try {
      const u = uniq();
      await assert.rejects(s.insertApiToken(apiToken(`s-${u}`, `ghost${u}`)), (e: Error & { code?: string }) => e.code === 'AUTH_USER_NOT_FOUND' && e.message.includes(`ghost${u}`));
      assert.equal(await s.findApiToken(hashToken(`s-${u}`)), undefined);
      await s.addUser(user(`dan${u}`));
      const t = apiToken(`s-${u}`, `dan${u}`);
      await s.insertApiToken(t);
      await assert.rejects(s.insertApiToken({ ...t, createdAt: 99 }), code('STORE_DUPLICATE'));
      await assert.rejects(s.insertApiToken({ ...apiToken(`other-${u}`, `dan${u}`), id: t.id }), code('STORE_DUPLICATE'));
      assert.deepEqual(await s.listApiTokens(`dan${u}`), [t]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: a removed user's API tokens are gone; its workflows stay with their owner; other users keep theirs`, async () => {
    const s = await open();
    try {
      const u = uniq();
      await s.addUser(user(`eve${u}`));
      await s.addUser(user(`fay${u}`));
      const e1 = apiToken(`e1-${u}`, `eve${u}`);
      const e2 = apiToken(`e2-${u}`, `eve${u}`, { revoked: true });
      const f1 = apiToken(`f1-${u}`, `fay${u}`);
      for (const t of [e1, e2, f1]) await s.insertApiToken(t);
      const wf = uniq();
      await s.createWorkflow({ ...record(wf), owner: `eve${u}` }, [unit('a')]);
      assert.equal(await s.removeUser(`eve${u}`), true);
      assert.equal(await s.findApiToken(e1.hash), undefined);
      assert.equal(await s.findApiToken(e2.hash), undefined);
      assert.deepEqual(await s.listApiTokens(`eve${u}`), []);
      assert.deepEqual(await s.listApiTokens(`fay${u}`), [f1]);
      assert.equal((await s.getWorkflow(wf, { owner: `eve${u}` }))?.owner, `eve${u}`);
      assert.deepEqual((await s.listWorkflows({ owner: `eve${u}` })).map((w) => w.id), [wf]);
      // the name can be taken again, without the old tokens
      await s.addUser(user(`eve${u}`));
      assert.deepEqual(await s.listApiTokens(`eve${u}`), []);
    } finally {
      await s.close();
    }
  });

  test(`${name}: join tokens bound to a node (v9): consumed only under that name, kept whole when refused; unbound ones under any`, async () => {
    const s = await open();
    try {
      const jt = s.joinTokens();
      const u = uniq();
      const bound = joinToken(`bound-${u}`, { usesLeft: 1, expiresAt: 50_000, node: 'n1' });
      await jt.insert(bound);
      assert.deepEqual(await jt.get(bound.hash), bound);
      assert.equal(await jt.consume(bound.hash, 10_000, 'n2'), undefined, 'another name');
      assert.equal(await jt.consume(bound.hash, 10_000), undefined, 'no name');
      assert.equal((await jt.get(bound.hash))!.usesLeft, 1, 'refused: not used up');
      assert.deepEqual(await jt.consume(bound.hash, 10_000, 'n1'), { ...bound, usesLeft: 0 });
      const free = joinToken(`free-${u}`, { usesLeft: 1, expiresAt: 50_000 });
      await jt.insert(free);
      assert.equal((await jt.get(free.hash))!.node, undefined);
      assert.deepEqual(await jt.consume(free.hash, 10_000, 'any'), { ...free, usesLeft: 0 });
      assert.ok((await jt.list()).some((r) => r.hash === bound.hash && r.node === 'n1'));
      await jt.delete(bound.hash);
      await jt.delete(free.hash);
    } finally {
      await s.close();
    }
  });

  test(`${name}: join tokens: inserted, consumed down to zero, then refused; expired ones are refused by consume; listed, deleted by id or hash`, async () => {
    const s = await open();
    try {
      const jt = s.joinTokens();
      const u = uniq();
      const two = joinToken(`two-${u}`, { usesLeft: 2, expiresAt: 50_000 });
      await jt.insert(two);
      assert.deepEqual(await jt.get(two.hash), two);
      assert.deepEqual(await jt.consume(two.hash, 10_000), { ...two, usesLeft: 1 });
      assert.deepEqual(await jt.consume(two.hash, 10_001), { ...two, usesLeft: 0 });
      assert.equal(await jt.consume(two.hash, 10_002), undefined, 'used up');
      assert.deepEqual(await jt.get(two.hash), { ...two, usesLeft: 0 }, 'kept, to say why it is refused');
      const exp = joinToken(`exp-${u}`, { usesLeft: 5, expiresAt: 20_000 });
      await jt.insert(exp);
      assert.equal(await jt.consume(exp.hash, 20_000), undefined, 'at its expiry');
      assert.equal(await jt.consume(exp.hash, 30_000), undefined);
      assert.equal((await jt.get(exp.hash))!.usesLeft, 5, 'a refused consume changes nothing');
      assert.equal(await jt.consume(hashToken(`nope-${u}`), 0), undefined);
      assert.equal(await jt.get(hashToken(`nope-${u}`)), undefined);
      await assert.rejects(jt.insert({ ...two, usesLeft: 9 }), code('STORE_DUPLICATE'));
      const mine = (await jt.list()).filter((r) => r.hash === two.hash || r.hash === exp.hash);
      assert.deepEqual(mine.map((r) => r.id).sort(), [two.id, exp.id].sort());
      assert.equal(await jt.delete(two.id), true);
      assert.equal(await jt.delete(exp.hash), true);
      assert.equal(await jt.delete(exp.hash), false);
      assert.equal(await jt.get(two.hash), undefined);
    } finally {
      await s.close();
    }
  });

  test(`${name}: join tokens through src/mesh (createJoinToken / consumeJoinToken): used once, then MESH_TOKEN_USED_UP; expired; unknown`, async () => {
    const s = await open();
    try {
      const jt = s.joinTokens();
      const now = 1_700_000_000_000;
      const { token, record: rec } = await createJoinToken(jt, { ttlSeconds: 600, createdBy: `admin${uniq()}`, now });
      assert.equal(rec.hash, hashToken(token));
      assert.deepEqual(await jt.get(rec.hash), rec);
      assert.equal((await consumeJoinToken(jt, token, now + 1)).usesLeft, 0);
      await assert.rejects(consumeJoinToken(jt, token, now + 2), code('MESH_TOKEN_USED_UP'));
      const late = await createJoinToken(jt, { ttlSeconds: 60, uses: 3, createdBy: 'admin', now });
      await assert.rejects(consumeJoinToken(jt, late.token, now + 60_000), code('MESH_TOKEN_EXPIRED'));
      await assert.rejects(consumeJoinToken(jt, `${token}x`, now), code('MESH_TOKEN_UNKNOWN'));
    } finally {
      await s.close();
    }
  });

  test(`${name}: agents racing for join tokens on separate connections: a 1-use token is used exactly once, a 3-use one exactly 3 times`, async () => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
    try {
      const u = uniq();
      const one = joinToken(`race1-${u}`, { usesLeft: 1, expiresAt: Date.now() + 600_000 });
      const three = joinToken(`race3-${u}`, { usesLeft: 3, expiresAt: Date.now() + 600_000 });
      await stores[0]!.joinTokens().insert(one);
      await stores[1]!.joinTokens().insert(three);
      const now = Date.now();
      const race = (hash: string) => Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % stores.length]!.joinTokens().consume(hash, now)));
      const [r1, r3] = await Promise.all([race(one.hash), race(three.hash)]);
      const won1 = r1.filter((r) => r !== undefined);
      const won3 = r3.filter((r) => r !== undefined);
      assert.equal(won1.length, 1);
      assert.equal(won1[0]!.usesLeft, 0);
      assert.equal(won3.length, 3);
      assert.deepEqual(won3.map((r) => r!.usesLeft).sort(), [0, 1, 2], 'each winner saw its own decrement');
      assert.equal((await stores[2]!.joinTokens().get(one.hash))!.usesLeft, 0);
      assert.equal((await stores[3]!.joinTokens().get(three.hash))!.usesLeft, 0);
    } finally {
      await Promise.all(stores.map((x) => x.close()));
    }
  });

  test(`${name}: nodes: upserted (info as JSON), read back, listed by name, patched, deleted; unknown ones are false/undefined`, async () => {
    const s = await open();
    try {
      const u = uniq();
      const n2 = node(`n02${u}`);
      const n1 = node(`n01${u}`, { state: 'down', drained: true, certSerial: null, lastSeenAt: 9_000, stateChangedAt: 9_500 });
      await s.upsertNode(n2);
      await s.upsertNode(n1);
      assert.deepEqual(await s.getNode(n1.name), n1);
      assert.deepEqual(await s.getNode(n2.name), n2);
      assert.equal(await s.getNode(`n03${u}`), undefined);
      assert.deepEqual((await s.listNodes()).filter((x) => x.name.endsWith(u)), [n1, n2]);
      // upsert of a known name replaces every field
      const again = node(n2.name, { info: { name: n2.name, cores: 8, labels: {} }, certSerial: 'cd02', joinedAt: 7_000, stateChangedAt: 7_000 });
      await s.upsertNode(again);
      assert.deepEqual(await s.getNode(n2.name), again);
      // patch: only the fields given
      assert.equal(await s.patchNode(n1.name, { state: 'ready', drained: false, lastSeenAt: 10_000, stateChangedAt: 10_000 }), true);
      assert.deepEqual(await s.getNode(n1.name), { ...n1, state: 'ready', drained: false, lastSeenAt: 10_000, stateChangedAt: 10_000 });
      assert.equal(await s.patchNode(n1.name, { certSerial: 'ef03', info: { name: n1.name, cores: 2 } }), true);
      assert.deepEqual(await s.getNode(n1.name), { ...n1, state: 'ready', drained: false, lastSeenAt: 10_000, stateChangedAt: 10_000, certSerial: 'ef03', info: { name: n1.name, cores: 2 } });
      // why it is drained, and by whom
      assert.equal(await s.patchNode(n1.name, { drained: true, drainReason: 'health check failed: disk /scratch full', drainedBy: 'health' }), true);
      assert.deepEqual([(await s.getNode(n1.name))!.drainReason, (await s.getNode(n1.name))!.drainedBy], ['health check failed: disk /scratch full', 'health']);
      assert.equal(await s.patchNode(n1.name, { drained: false, drainReason: null, drainedBy: null }), true);
      assert.deepEqual([(await s.getNode(n1.name))!.drained, (await s.getNode(n1.name))!.drainReason, (await s.getNode(n1.name))!.drainedBy], [false, null, null]);
      assert.equal(await s.patchNode(n1.name, { state: 'revoked', certSerial: null }), true);
      assert.deepEqual([(await s.getNode(n1.name))!.state, (await s.getNode(n1.name))!.certSerial], ['revoked', null]);
      assert.equal(await s.patchNode(n1.name, {}), true, 'an empty patch of a known node');
      assert.equal(await s.patchNode(`n09${u}`, { state: 'lost' }), false);
      assert.equal(await s.patchNode(`n09${u}`, {}), false);
      assert.equal(await s.getNode(`n09${u}`), undefined, 'a patch never creates a node');
      assert.equal(await s.deleteNode(n1.name), true);
      assert.equal(await s.deleteNode(n1.name), false);
      assert.deepEqual((await s.listNodes()).filter((x) => x.name.endsWith(u)).map((x) => x.name), [n2.name]);
    } finally {
      await s.close();
    }
  });

  test(`${name}: stats: units of active workflows by state, workflows by status, nodes by state and drained`, async () => {
    const s = await open();
    try {
      const before = await s.stats();
      const u = uniq();
      const active = uniq();
      const done = uniq();
      await s.createWorkflow({ ...record(active), status: 'running' }, [unit('a', { state: 'running' }), unit('b', { state: 'ready' }), unit('c'), unit('d', { state: 'succeeded' })]);
      // An ended workflow's units are not counted (its workflow is).
      await s.createWorkflow({ ...record(done), status: 'succeeded' }, [unit('a', { state: 'succeeded' }), unit('b', { state: 'pending' })]);
      await s.upsertNode(node(`s1${u}`));
      await s.upsertNode(node(`s2${u}`, { state: 'down', drained: true }));
      await s.upsertNode(node(`s3${u}`, { drained: true }));
      const after = await s.stats();
      const d = (a: Record<string, number>, b: Record<string, number>, k: string) => (a[k] ?? 0) - (b[k] ?? 0);
      assert.deepEqual(
        ['pending', 'ready', 'running', 'succeeded', 'failed'].map((k) => d(after.units, before.units, k)),
        [1, 1, 1, 1, 0],
      );
      assert.equal(d(after.workflows, before.workflows, 'running'), 1);
      assert.equal(d(after.workflows, before.workflows, 'succeeded'), 1);
      const nodes = (x: typeof after, state: string, drained: boolean) => x.nodes.find((n) => n.state === state && n.drained === drained)?.count ?? 0;
      assert.equal(nodes(after, 'ready', false) - nodes(before, 'ready', false), 1);
      assert.equal(nodes(after, 'ready', true) - nodes(before, 'ready', true), 1);
      assert.equal(nodes(after, 'down', true) - nodes(before, 'down', true), 1);
      for (const v of [...Object.values(after.units), ...Object.values(after.workflows), ...after.nodes.map((n) => n.count)]) assert.equal(typeof v, 'number');
    } finally {
      await s.close();
    }
  });

  test(`${name}: workflow owners: stored, listed per owner, and getWorkflow with an owner does not see another owner's workflows`, async () => {
    const s = await open();
    try {
      const u = uniq();
      const base = uniq();
      const [ann, bob] = [`ann${u}`, `bob${u}`];
      await s.createWorkflow({ ...record(`${base}a1`, 1_000), owner: ann }, [unit('a')]);
      await s.createWorkflow({ ...record(`${base}a2`, 2_000), owner: ann, status: 'running' }, []);
      await s.createWorkflow({ ...record(`${base}b1`, 3_000), owner: bob }, []);
      await s.createWorkflow({ ...record(`${base}n1`, 4_000), owner: null }, []);
      assert.equal((await s.getWorkflow(`${base}a1`))!.owner, ann);
      assert.equal((await s.getWorkflow(`${base}n1`))!.owner, null);
      assert.deepEqual((await s.listWorkflows({ owner: ann, limit: 1000 })).map((w) => w.id), [`${base}a2`, `${base}a1`]);
      assert.deepEqual((await s.listWorkflows({ owner: ann, status: 'running' })).map((w) => w.id), [`${base}a2`]);
      assert.deepEqual((await s.listWorkflows({ owner: ann, limit: 1 })).map((w) => w.id), [`${base}a2`]);
      assert.deepEqual((await s.listWorkflows({ owner: bob })).map((w) => w.id), [`${base}b1`]);
      assert.deepEqual(await s.listWorkflows({ owner: `carl${u}` }), []);
      const all = (await s.listWorkflows({ limit: 1000 })).filter((w) => w.id.startsWith(base)).map((w) => w.id);
      assert.deepEqual(all, [`${base}n1`, `${base}b1`, `${base}a2`, `${base}a1`]);
      // isolation: by full id and by prefix
      assert.equal((await s.getWorkflow(`${base}b1`, { owner: bob }))?.id, `${base}b1`);
      assert.equal(await s.getWorkflow(`${base}b1`, { owner: ann }), undefined);
      assert.equal(await s.getWorkflow(`${base}n1`, { owner: ann }), undefined, 'a workflow without an owner is nobody\'s');
      assert.equal((await s.getWorkflow(`${base}b`, { owner: bob }))?.id, `${base}b1`);
      assert.equal(await s.getWorkflow(`${base}b`, { owner: ann }), undefined);
      assert.equal((await s.getWorkflow(`${base}n`))?.id, `${base}n1`, 'without an owner: every workflow');
      // a prefix shared with other owners' workflows is not ambiguous for one owner with only one of them
      await assert.rejects(s.getWorkflow(base), code('STORE_AMBIGUOUS_ID'));
      assert.equal((await s.getWorkflow(base, { owner: bob }))?.id, `${base}b1`);
      await assert.rejects(s.getWorkflow(base, { owner: ann }), code('STORE_AMBIGUOUS_ID'));
    } finally {
      await s.close();
    }
  });

  test(`${name}: the leader lease: taken when free, renewed by its holder and term only, taken over after expiry with a new term`, async () => {
    const s = await open();
    const t = await open();
    try {
      const u = uniq();
      const [a, b] = [`srvA:${u}`, `srvB:${u}`];
      // Whoever held it before (another test of this database) has let it expire or expires soon.
      let first = await s.acquireLeader(a, 'https://a:1', 400);
      for (let i = 0; !first.ok && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
        first = await s.acquireLeader(a, 'https://a:1', 400);
      }
      assert.ok(first.ok, 'taken when free');
      const term = first.lease.term;
      assert.equal(first.lease.holder, a);
      assert.equal(first.lease.url, 'https://a:1');
      assert.ok(first.lease.expiresAt > first.lease.now && first.lease.expiresAt <= first.lease.now + 400, 'expiry on the store clock');
      // held: another server is refused and told who holds it
      const refused = await t.acquireLeader(b, 'https://b:2', 400);
      assert.equal(refused.ok, false);
      assert.ok(!refused.ok && refused.current.holder === a && refused.current.url === 'https://a:1' && refused.current.term === term);
      // the holder acquiring again only extends (same term); renewals need holder and term
      const again = await s.acquireLeader(a, 'https://a:1', 400);
      assert.ok(again.ok && again.lease.term === term);
      assert.equal(await s.renewLeader(a, term, 400), true);
      assert.equal(await t.renewLeader(b, term, 400), false, 'another holder cannot renew');
      assert.equal(await s.renewLeader(a, term - 1, 400), false, 'a stale term cannot renew');
      const read = await t.readLeader();
      assert.equal(read.holder, a);
      assert.equal(read.term, term);
      // expired: taken over with a new term; the old holder can no longer renew (fenced by term)
      await new Promise((r) => setTimeout(r, 450));
      const taken = await t.acquireLeader(b, 'https://b:2', 400);
      assert.ok(taken.ok && taken.lease.term === term + 1 && taken.lease.holder === b);
      assert.equal(await s.renewLeader(a, term, 400), false);
      assert.equal((await s.acquireLeader(a, 'https://a:1', 400)).ok, false);
      // released: free at once, and the next holder gets a new term
      await s.releaseLeader(a, term); // not ours: nothing
      assert.equal((await t.readLeader()).holder, b);
      await t.releaseLeader(b, term + 1);
      const back = await s.acquireLeader(a, 'https://a:1', 400);
      assert.ok(back.ok && back.lease.term === term + 2);
      // racing for a free lease: exactly one wins
      await s.releaseLeader(a, term + 2);
      const race = await Promise.all([s.acquireLeader(a, 'https://a:1', 60_000), t.acquireLeader(b, 'https://b:2', 60_000), s.acquireLeader(`srvC:${u}`, 'https://c:3', 60_000)]);
      assert.equal(race.filter((r) => r.ok).length, 1);
      const winner = race.find((r) => r.ok)!;
      await s.releaseLeader(winner.ok ? winner.lease.holder! : '', term + 3);
    } finally {
      await s.close();
      await t.close();
    }
  });

  test(`${name}: a CA rotation: one at a time, its phase changed only from the phase it is in, finished once (the new CA becomes the cluster's, the old one the retired)`, async () => {
    const s = await open();
    try {
      const base = await s.putClusterCaIfAbsent({ trustDomain: 'test.local', certPem: `CERT-${uniq()}`, keyPem: 'KEY', createdAt: 1000 });
      const before = (await s.getClusterCaState())!;
      assert.deepEqual(before.ca, base);
      assert.equal(before.rotation, null);
      const next = { certPem: `NEXT-${uniq()}`, keyPem: `NEXTKEY-${uniq()}` };
      assert.equal(await s.startCaRotation(next, 2000, 5000), true);
      assert.equal(await s.startCaRotation({ certPem: 'OTHER', keyPem: 'K' }, 2100, 2100), false, 'one rotation at a time');
      let st = (await s.getClusterCaState())!;
      assert.deepEqual(st.rotation, { phase: 'trust', ...next, startedAt: 2000, phaseChangedAt: 2000, issueAfter: 5000 });
      assert.deepEqual(st.ca, base, 'the cluster CA stays the old one until the end');
      assert.equal(await s.setCaRotationPhase('OTHER', 'trust', 'issue', 3000), false, 'not that rotation');
      assert.equal(await s.setCaRotationPhase(next.certPem, 'issue', 'trust', 3000), false, 'not in that phase');
      assert.equal(await s.setCaRotationPhase(next.certPem, 'trust', 'issue', 3000), true);
      st = (await s.getClusterCaState())!;
      assert.deepEqual([st.rotation!.phase, st.rotation!.phaseChangedAt, st.rotation!.startedAt], ['issue', 3000, 2000]);
      assert.equal(await s.finishCaRotation('OTHER', 4000), false);
      assert.equal(await s.finishCaRotation(next.certPem, 4000), true);
      assert.equal(await s.finishCaRotation(next.certPem, 4001), false, 'once');
      st = (await s.getClusterCaState())!;
      assert.deepEqual(st, { ca: { trustDomain: base.trustDomain, certPem: next.certPem, keyPem: next.keyPem, createdAt: 2000 }, rotation: null, retired: { certPem: base.certPem, retiredAt: 4000 } });
      assert.deepEqual(await s.getClusterCa(), st.ca);
      assert.equal(await s.setCaRotationPhase(next.certPem, 'issue', 'trust', 5000), false, 'no rotation any more');
      // The CA of a node's certificate.
      const n = node(`ca${uniq()}`, { certCa: 'AA:01' });
      await s.upsertNode(n);
      assert.equal((await s.getNode(n.name))!.certCa, 'AA:01');
      assert.equal(await s.patchNode(n.name, { certCa: 'BB:02' }), true);
      assert.equal((await s.getNode(n.name))!.certCa, 'BB:02');
    } finally {
      await s.close();
    }
  });

  test(`${name}: the cluster CA is stored once: the first one in stays`, async () => {
    const s = await open();
    try {
      const before = await s.getClusterCa();
      const mine = { trustDomain: 'test.local', certPem: `CERT-${uniq()}`, keyPem: 'KEY', createdAt: 1000 };
      const got = await s.putClusterCaIfAbsent(mine);
      if (before) assert.deepEqual(got, before);
      else assert.deepEqual(got, mine);
      const other = await s.putClusterCaIfAbsent({ ...mine, certPem: 'OTHER' });
      assert.deepEqual(other, got, 'a second one does not replace it');
      assert.deepEqual(await s.getClusterCa(), got);
    } finally {
      await s.close();
    }
  });

  test(`${name}: the audit log: appended in order, read back by time, actor and action; no entry can be changed or deleted`, async () => {
    const s = await open();
    try {
      const u = uniq();
      const [ann, bob] = [`ann${u}`, `bob${u}`];
      const a1 = await s.appendAudit({ at: 1_000, actor: ann, action: 'user.add', target: bob, source: '10.0.0.7', result: 'ok', details: { admin: false, unixUser: 'bob' } });
      const a2 = await s.appendAudit({ at: 2_000, actor: bob, action: 'node.drain', target: `n1${u}`, source: '10.0.0.8', result: 'AUTH_FORBIDDEN', details: {} });
      const a3 = await s.appendAudit({ at: 3_000, actor: ann, action: 'node.undrain', target: `n1${u}`, source: null, result: 'ok', details: { reason: 'back' } });
      assert.ok(a1.id < a2.id && a2.id < a3.id, 'ids grow with each entry');
      assert.deepEqual(a1, { id: a1.id, at: 1_000, actor: ann, action: 'user.add', target: bob, source: '10.0.0.7', result: 'ok', details: { admin: false, unixUser: 'bob' } });
      const mine = (xs: { actor: string }[]) => xs.filter((x) => x.actor === ann || x.actor === bob);
      assert.deepEqual(mine(await s.listAudit({ afterId: a1.id - 1 })), [a1, a2, a3]);
      assert.deepEqual(await s.listAudit({ actor: ann }), [a1, a3]);
      assert.deepEqual(mine(await s.listAudit({ since: 2_000, until: 3_000, afterId: a1.id - 1 })), [a2]);
      assert.deepEqual(await s.listAudit({ actor: ann, action: 'node.' }), [a3]);
      assert.deepEqual(await s.listAudit({ actor: ann, action: 'node.drain' }), []);
      assert.deepEqual(await s.listAudit({ actor: ann, limit: 1 }), [a1]);
      // Append-only in the database itself: whoever sends the SQL.
      const raw = rawSql(s);
      await assert.rejects(raw(`UPDATE audit SET result = 'ok' WHERE id = ${a2.id}`), /append-only/);
      await assert.rejects(raw(`DELETE FROM audit WHERE id = ${a1.id}`), /append-only/);
      if (s.kind === 'postgres') await assert.rejects(raw('TRUNCATE audit'), /append-only/);
      assert.deepEqual(await s.listAudit({ actor: ann }), [a1, a3], 'nothing changed');
    } finally {
      await s.close();
    }
  });

  // ---- retention (schema v7) ----

  /** A workflow with `n` units, an attempt and two events per unit, in `status`, ended at `endedAt`. */
  const filled = async (s: Store, status: WorkflowRecord['status'], endedAt: number | null, n = 5): Promise<string> => {
    const id = uniq();
    await s.createWorkflow({ ...record(id, 1_000), status }, Array.from({ length: n }, (_, i) => unit(`j${i}`)));
    await s.write({
      units: Array.from({ length: n }, (_, i) => ({ workflowId: id, unit: unit(`j${i}`, { state: status === 'running' ? 'running' : 'succeeded', attempt: 1, startedAt: 1_000, endedAt }) })),
      attempts: Array.from({ length: n }, (_, i) => att(id, `j${i}`, 1, { startedAt: 1_000, endedAt })),
      events: Array.from({ length: 2 * n }, (_, i) => ({ workflowId: id, at: 1_000 + i, key: `j${i >> 1}`, level: 'info' as const, message: `e${i}` })),
      workflows: [{ id, patch: { status, startedAt: 1_000, endedAt } }],
    });
    return id;
  };
  const rows = async (s: Store, id: string) => ({ units: (await s.units(id)).length, attempts: (await s.attempts(id)).length, events: (await s.events(id)).length });

  test(`${name}: pruneWorkflows deletes only finished, old, unleased workflows: the condition is in the SQL, whatever ids the caller gives`, async () => {
    const s = await open();
    try {
      const now = 1_000_000;
      const done = await filled(s, 'succeeded', 2_000);
      const failed = await filled(s, 'failed', 3_000);
      const canceled = await filled(s, 'canceled', 3_500);
      const running = await filled(s, 'running', null);
      const pending = uniq();
      await s.createWorkflow(record(pending, 1_000), [unit('a')]);
      const recent = await filled(s, 'succeeded', 900_000);
      const leased = await filled(s, 'failed', 2_500);
      assert.equal((await s.acquireRunLease(leased, 'host:1:live', 60_000, now)).ok, true);
      const expired = await filled(s, 'failed', 2_600);
      assert.equal((await s.acquireRunLease(expired, 'host:2:gone', 1_000, now - 5_000)).ok, true);
      const all = [done, failed, canceled, running, pending, recent, leased, expired];
      const before = new Map(await Promise.all(all.map(async (id) => [id, await rows(s, id)] as const)));

      const preview = await s.previewPrune({ endedBefore: 500_000, now, ids: all });
      assert.deepEqual(preview, { workflows: 4, units: 20, attempts: 20, events: 40, keptRunning: 2, keptLeased: 1 });
      assert.equal((await s.getWorkflow(done))?.status, 'succeeded', 'a preview removes nothing');

      // Everything asked for by id, with a cutoff in the future: still only what is prunable.
      const got = await s.pruneWorkflows({ endedBefore: Number.MAX_SAFE_INTEGER, now, ids: [running, pending, leased] });
      assert.deepEqual(got, [], 'running, pending and leased workflows are never deleted');
      const pruned = await s.pruneWorkflows({ endedBefore: 500_000, now, ids: all, limit: 10 });
      assert.deepEqual(pruned.map((w) => w.id).sort(), [done, failed, canceled, expired].sort());
      const d = pruned.find((w) => w.id === done)!;
      assert.deepEqual(d, { id: done, name: 'demo', status: 'succeeded', owner: null, runDir: `/tmp/runs/${done}`, endedAt: 2_000 });
      for (const id of [done, failed, canceled, expired]) assert.equal(await s.getWorkflow(id), undefined, `${id} is gone`);
      for (const id of [running, pending, recent, leased]) {
        assert.ok(await s.getWorkflow(id), `${id} stays`);
        assert.deepEqual(await rows(s, id), before.get(id), `${id} keeps every row`);
      }
      // A pruned workflow cannot be resumed: its row is gone before its rows are.
      await assert.rejects(s.acquireRunLease(done, 'host:3:x', 1_000, now), code('RUN_NOT_FOUND'));
      const queue = (await s.pruneQueue()).filter((q) => all.includes(q.id));
      assert.deepEqual(queue.map((q) => q.id).sort(), [done, failed, canceled, expired].sort());
      assert.equal(queue.find((q) => q.id === done)?.runDir, `/tmp/runs/${done}`);
      // Its rows go in bounded steps; it leaves the queue only once they are gone.
      assert.deepEqual(await s.finishPruned([done]), [], 'not while its rows are there');
      const ids4 = [done, failed, canceled, expired];
      const step = await s.purgePruned(ids4, 3);
      assert.deepEqual(step, { units: 3, attempts: 3, events: 3 }, 'at most maxRows per table and step');
      let total = { ...step };
      for (;;) {
        const r = await s.purgePruned(ids4, 3);
        total = { units: total.units + r.units, attempts: total.attempts + r.attempts, events: total.events + r.events };
        if (r.units + r.attempts + r.events === 0) break;
      }
      assert.ok(total.units >= 20 && total.attempts >= 20 && total.events >= 40, JSON.stringify(total));
      for (const id of [done, failed, canceled, expired]) assert.deepEqual(await rows(s, id), { units: 0, attempts: 0, events: 0 });
      for (const id of [running, pending, recent, leased]) assert.deepEqual(await rows(s, id), before.get(id), `${id} keeps every row`);
      assert.deepEqual((await s.finishPruned([done, failed, canceled, expired, running])).sort(), [done, failed, canceled, expired].sort());
      assert.deepEqual((await s.pruneQueue()).filter((q) => all.includes(q.id)), []);
      // The rows of a workflow that exists are never purged, even if its id is queued.
      const raw = rawSql(s);
      await raw(`INSERT INTO prune_queue (id, run_dir, pruned_at) VALUES ('${running}', '/x', 1)`);
      while ((await s.purgePruned([running], 1000)).units > 0);
      assert.deepEqual(await rows(s, running), before.get(running));
      assert.deepEqual(await s.finishPruned([running]), []);
      // Nor the rows of a workflow that is not queued.
      assert.deepEqual(await s.purgePruned([recent], 1000), { units: 0, attempts: 0, events: 0 });
      assert.deepEqual(await rows(s, recent), before.get(recent));
      await raw(`DELETE FROM prune_queue WHERE id = '${running}'`);
    } finally {
      await s.close();
    }
  });

  test(`${name}: pruneStore removes finished workflows with their rows, keeps running ones whole, reports counts; a dry run removes nothing`, async () => {
    const s = await open();
    try {
      const { pruneStore } = await import('../../src/store/index.js');
      const now = Date.now();
      const old = [await filled(s, 'succeeded', 2_000, 7), await filled(s, 'failed', 2_000, 3), await filled(s, 'canceled', 2_000, 1)];
      const running = await filled(s, 'running', null, 4);
      const ids = [...old, running];
      const dry = await pruneStore(s, { endedBefore: now - 60_000, ids, dryRun: true });
      assert.equal(dry.dryRun, true);
      assert.deepEqual([dry.workflows, dry.units, dry.attempts, dry.events, dry.keptRunning], [3, 11, 11, 22, 1]);
      for (const id of old) assert.ok(await s.getWorkflow(id), 'a dry run removes nothing');
      const purged: string[] = [];
      const rep = await pruneStore(s, { endedBefore: now - 60_000, ids, batchWorkflows: 2, batchRows: 4, pauseMs: 0, onPurged: async (q) => void purged.push(...q.map((x) => x.id)) });
      assert.deepEqual([rep.workflows, rep.units, rep.attempts, rep.events, rep.keptRunning, rep.interrupted], [3, 11, 11, 22, 1, false]);
      assert.deepEqual(rep.removed.map((w) => w.id).sort(), [...old].sort());
      assert.ok(old.every((id) => purged.includes(id)), 'onPurged was told of each');
      assert.ok(rep.transactions > 6, `small steps (${rep.transactions})`);
      for (const id of old) {
        assert.equal(await s.getWorkflow(id), undefined);
        assert.deepEqual(await rows(s, id), { units: 0, attempts: 0, events: 0 });
      }
      assert.deepEqual(await rows(s, running), { units: 4, attempts: 4, events: 8 });
      assert.equal((await s.getWorkflow(running))?.status, 'running');
      assert.deepEqual((await s.pruneQueue()).filter((q) => ids.includes(q.id)), []);
      // An aborted prune stops between steps; the next one finishes what it queued.
      const more = [await filled(s, 'succeeded', 2_000, 3), await filled(s, 'succeeded', 2_000, 3)];
      const ac = new AbortController();
      let calls = 0;
      // Aborted right after the first batch is taken (the clock is read for it): its rows stay, queued.
      const cut = await pruneStore(s, { endedBefore: now, ids: more, batchWorkflows: 1, batchRows: 1, pauseMs: 0, signal: ac.signal, now: () => (++calls === 2 && ac.abort(), Date.now()) });
      assert.equal(cut.interrupted, true);
      assert.equal(cut.workflows, 1);
      const first = cut.removed[0]!.id;
      assert.equal(await s.getWorkflow(first), undefined);
      assert.deepEqual(await rows(s, first), { units: 3, attempts: 3, events: 6 }, 'queued, not purged yet');
      assert.ok((await s.pruneQueue()).some((q) => q.id === first));
      const rest = await pruneStore(s, { endedBefore: now, ids: more, pauseMs: 0 });
      assert.equal(cut.workflows + rest.workflows, 2);
      for (const id of more) assert.deepEqual(await rows(s, id), { units: 0, attempts: 0, events: 0 });
      assert.deepEqual((await s.pruneQueue()).filter((q) => more.includes(q.id)), []);
    } finally {
      await s.close();
    }
  });

  test(`${name}: pruneHistory removes job history that ended before the cutoff, in bounded steps; workflowEnds`, async () => {
    const s = await open();
    try {
      const u = uniq();
      const a = `hist-a-${u}`;
      const raw = rawSql(s);
      // 30 runs ended at -30000..-1000 (before anything else in this store), 3 at 1e15 and later.
      const values = [...Array.from({ length: 30 }, (_, i) => `('${a}', ${-(i + 1) * 1_000}, ${i + 1})`), `('${a}', 1000000000000000, 100)`, `('${a}', 1000000000000001, 101)`];
      await raw(`INSERT INTO job_history (job, ended_at, seconds) VALUES ${values.join(', ')}`);
      const steps: number[] = [];
      for (;;) {
        const n = await s.pruneHistory(-10_500, 4);
        steps.push(n);
        if (n < 4) break;
      }
      assert.deepEqual(steps, [4, 4, 4, 4, 4, 0], 'at most maxRows a step');
      assert.deepEqual(await s.jobHistory(a, 100), [101, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'only rows that ended before the cutoff went');
      const live = await filled(s, 'running', null, 1);
      const ended = await filled(s, 'failed', 4_000, 1);
      const ends = await s.workflowEnds([live, ended, 'nosuchworkflow']);
      assert.deepEqual([...ends.entries()].sort(), [[ended, { status: 'failed', endedAt: 4_000 }], [live, { status: 'running', endedAt: null }]].sort());
      assert.equal((await s.workflowEnds([])).size, 0);
    } finally {
      await s.close();
    }
  });

  inventoryContract(name, open, uniq);
}

/** Plain SQL on a store's own connection (tests only): what someone with the database's password could send. */
function rawSql(s: Store): (sql: string) => Promise<unknown> {
  const x = s as unknown as { db?: { exec(sql: string): unknown }; pool?: { query(sql: string): Promise<unknown> } };
  if (s.kind === 'sqlite') return async (sql) => x.db!.exec(sql);
  return (sql) => x.pool!.query(sql);
}
