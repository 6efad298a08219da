// The SiteDriver contract (src/sites/driver.ts), run by every driver that can run here: the
// local driver (test/sites/local-driver.test.ts), the Slurm pilot site (at merge). The caller
// gives a driver, a real server that its instances join, and a way to mint a request.
//
//   driverContract('local', async () => ({ driver, instanceType: 'small', request, joined, teardown }));
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { InstanceRequest, InstanceView, SiteDriver } from '../../src/sites/index.js';
import { WarrenError } from '../../src/common/index.js';

export interface ContractEnv {
  driver: SiteDriver;
  /** An instance type the site has. */
  instanceType: string;
  /** A full request for node `node` (a fresh join token, the server's URL and CA). */
  request(node: string): Promise<InstanceRequest>;
  /** Whether the server has node `node` ready (joined, heartbeating). */
  joined(node: string): Promise<boolean>;
  /** Whether anything of instance `id` is left on the machine (processes, network, files). */
  leftovers?(view: InstanceView): Promise<string[]>;
  /** How long an instance may take from start to joined. */
  bootTimeoutMs: number;
  teardown(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const t0 = Date.now();
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

function codeOf(e: unknown): string | undefined {
  return e instanceof WarrenError ? e.code : undefined;
}

export function driverContract(name: string, setup: () => Promise<ContractEnv>, opts: { skip?: string | false; timeoutMs?: number } = {}): void {
  describe(`SiteDriver contract: ${name}`, { skip: opts.skip ?? false, timeout: opts.timeoutMs ?? 180_000 }, () => {
    let env: ContractEnv;
    before(async () => {
      env = await setup();
    });
    after(async () => {
      await env?.teardown();
    });

    it('check() passes on a usable site', async () => {
      await env.driver.check();
    });

    it('start: pending or booting at once, then running, and its agent joined the server under its node name', async () => {
      const req = await env.request('c-one');
      const v0 = await env.driver.start(req);
      assert.ok(['pending', 'booting'].includes(v0.state), v0.state);
      assert.equal(v0.node, 'c-one');
      assert.equal(v0.instanceType, env.instanceType);
      assert.equal(v0.runningAt, null);
      assert.ok(v0.requestedAt > 0 && v0.requestedAt <= Date.now());
      const v = await until('running', async () => (await env.driver.list()).find((x) => x.id === v0.id)!, (x) => x.state === 'running', env.bootTimeoutMs);
      assert.ok(v.runningAt! >= v.requestedAt);
      await until('the node joined', () => env.joined('c-one'), (x) => x, env.bootTimeoutMs);
    });

    it('list: every instance started, with its node, type and spot flag; ids unique', async () => {
      const v2 = await env.driver.start({ ...(await env.request('c-two')), spot: true });
      const all = await env.driver.list();
      const mine = all.filter((x) => x.node === 'c-one' || x.node === 'c-two');
      assert.equal(mine.length, 2);
      assert.equal(new Set(all.map((x) => x.id)).size, all.length);
      assert.equal(all.find((x) => x.id === v2.id)!.spot, true);
      assert.equal(all.find((x) => x.node === 'c-one')!.spot, false);
      await until('c-two running', async () => (await env.driver.list()).find((x) => x.id === v2.id)!, (x) => x.state === 'running', env.bootTimeoutMs);
    });

    it('stop: stopped with an end time and nothing left; stopping again is not an error', async () => {
      const v = (await env.driver.list()).find((x) => x.node === 'c-one')!;
      await env.driver.stop(v.id);
      const after1 = (await env.driver.list()).find((x) => x.id === v.id)!;
      assert.equal(after1.state, 'stopped');
      assert.ok(after1.endedAt! >= after1.runningAt!);
      if (env.leftovers) assert.deepEqual(await env.leftovers(after1), []);
      await env.driver.stop(v.id);
      assert.equal((await env.driver.list()).find((x) => x.id === v.id)!.state, 'stopped');
    });

    it('stop of an instance still booting: it never joins', async () => {
      const v = await env.driver.start(await env.request('c-early'));
      await env.driver.stop(v.id);
      assert.equal((await env.driver.list()).find((x) => x.id === v.id)!.state, 'stopped');
      await sleep(1500);
      assert.equal(await env.joined('c-early'), false);
    });

    it('bad input: an unknown instance type, an unknown id', async () => {
      await assert.rejects(env.driver.start({ ...(await env.request('c-bad')), instanceType: 'no-such-type' }), (e) => codeOf(e) === 'SITE_UNKNOWN_INSTANCE_TYPE' && /no-such-type/.test((e as Error).message));
      await assert.rejects(env.driver.stop('no-such-instance'), (e) => codeOf(e) === 'SITE_UNKNOWN_INSTANCE');
      assert.equal((await env.driver.list()).some((x) => x.node === 'c-bad'), false);
    });

    it('close: stops everything, leaves nothing, and the driver refuses new work', async () => {
      const before = await env.driver.list();
      const late = await env.request('c-late'); // before close: the local driver's bridge (the server's address) goes with it
      await env.driver.close();
      for (const v of await env.driver.list()) {
        assert.ok(['stopped', 'failed'].includes(v.state), `${v.id}: ${v.state}`);
        if (env.leftovers) assert.deepEqual(await env.leftovers(v), [], v.id);
      }
      assert.ok(before.length >= 3);
      await assert.rejects(env.driver.start(late), (e) => codeOf(e) === 'SITE_CLOSED');
      await env.driver.close();
    });
  });
}
