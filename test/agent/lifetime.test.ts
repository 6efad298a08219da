// A node that leaves by itself (`warren agent --idle-exit`, `--until`, `--walltime`; issue 14's
// pilots): it says so in its heartbeats, the server drains it (drainedBy agent), it runs what it
// was given to the end, then `finished` resolves. And the CLI's bad options.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { AgentDaemon } from '../../src/agent/remote.js';
import { RemoteAgent } from '../../src/server/cluster.js';
import { tempDir, warrenBin } from '../helpers.js';
import { ShAgent, shTask } from './sh-agent.js';
import { startServer, until, type TestServer } from './cluster-harness.js';

const FAST = { heartbeatMs: 100, retryMs: 50 };
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(name: string, lifetime: ConstructorParameters<typeof AgentDaemon>[0]['lifetime']): Promise<{ s: TestServer; daemon: AgentDaemon; agent: ShAgent }> {
  const s = await startServer({ timers: { heartbeatMs: 100, pollWaitMs: 5_000 } });
  const d = tempDir('warren-lifetime-');
  const agent = new ShAgent(join(d.dir, 'jobs'));
  const daemon = new AgentDaemon({ serverUrl: s.url, name, dataDir: join(d.dir, 'agent'), agent, token: await s.token(), caPem: s.caPem, timers: FAST, ...(lifetime ? { lifetime } : {}) });
  cleanups.push(async () => {
    await daemon.stop();
    await s.close();
    d.cleanup();
  });
  await daemon.start();
  return { s, daemon, agent };
}

test('--idle-exit: no task for that long, the server drains the node, finished resolves', { timeout: 30_000 }, async () => {
  const { s, daemon } = await setup('idle1', { idleExitMs: 400 });
  const t0 = Date.now();
  const why = await daemon.finished;
  const took = Date.now() - t0;
  assert.match(why, /^idle for 0\.\d s$|^idle for \d+(\.\d)? s$/);
  assert.ok(took >= 400, `left after ${took} ms, not before its idle time`);
  assert.ok(took < 10_000, `left within a short poll of draining (${took} ms), not a long poll's 5 s wait twice`);
  const rec = s.reg.get('idle1')!;
  assert.equal(rec.drained, true);
  assert.equal(rec.drainedBy, 'agent');
  assert.match(rec.drainReason!, /^leaving: idle for/);
  assert.equal(daemon.status().pendingReports, 0, 'every report was acknowledged before it left');
});

test('--idle-exit: a busy node does not leave; it leaves after its last task, whose end is reported first', { timeout: 30_000 }, async () => {
  const { s, daemon } = await setup('idle2', { idleExitMs: 500 });
  const ra = new RemoteAgent(s.reg, 'idle2');
  cleanups.push(() => ra.close());
  const exits: (number | null)[] = [];
  ra.setListener({ started: () => {}, exited: (e) => exits.push(e.exitCode) });
  ra.submit(shTask('sleep 1.5'));
  let left = false;
  void daemon.finished.then(() => (left = true));
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(left, false, 'not while a task runs');
  assert.equal(s.reg.get('idle2')!.drained, false);
  await daemon.finished;
  assert.deepEqual(exits, [0], 'its task ran to its end, and the server heard of it');
});

test('--until: from then on it takes no new work; what it was given before runs to its end', { timeout: 30_000 }, async () => {
  const { s, daemon } = await setup('until1', { untilMs: Date.now() + 600 });
  const ra = new RemoteAgent(s.reg, 'until1');
  cleanups.push(() => ra.close());
  const exits: (number | null)[] = [];
  ra.setListener({ started: () => {}, exited: (e) => exits.push(e.exitCode) });
  ra.submit(shTask('sleep 1'));
  const why = await daemon.finished;
  assert.match(why, /^its end is near \(until \d{4}-/);
  assert.deepEqual(exits, [0]);
  const rec = s.reg.get('until1')!;
  assert.equal(rec.drainedBy, 'agent');
  assert.match(rec.drainReason!, /^leaving: its end is near/);
});

test('without a lifetime the agent never leaves by itself', { timeout: 30_000 }, async () => {
  const { s, daemon } = await setup('stay1', undefined);
  let left = false;
  void daemon.finished.then(() => (left = true));
  await until(() => daemon.status().connected, 'connected');
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(left, false);
  assert.equal(s.reg.get('stay1')!.drained, false);
});

test('warren agent: bad --idle-exit, --until, --walltime and --walltime-margin are refused (exit 2)', { timeout: 60_000 }, () => {
  const d = tempDir('warren-lifetime-cli-');
  cleanups.push(() => d.cleanup());
  const cases: [string[], RegExp][] = [
    [['--idle-exit', 'soon'], /--idle-exit takes a duration/],
    [['--idle-exit', '10ms'], /--idle-exit must be at least 100ms/],
    [['--until', 'tomorrow'], /--until takes a time in seconds since the epoch/],
    [['--until', '1000', '--walltime', '1h'], /--until and --walltime cannot be given together/],
    [['--walltime-margin', '5m'], /--walltime-margin needs --walltime or --until/],
    [['--walltime', '1m', '--walltime-margin', '5m'], /less --walltime-margin 5m is already past/],
    [['--until', String(Math.floor(Date.now() / 1000) - 10)], /already past/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, [warrenBin, 'agent', '--server', 'https://127.0.0.1:1', '--data', join(d.dir, 'a'), '--name', 'x1', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, WARREN_HOME: join(d.dir, 'h') } });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /error\[CLI_BAD_OPTION\]/);
    assert.match(r.stderr, re);
  }
});
