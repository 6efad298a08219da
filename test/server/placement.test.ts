// The orchestrator places jobs by the planner's plan and re-plans when a runtime strays
// from its estimate; `warren run --simulate --platform` replays a workflow across sites.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { PlanPlacement } from '../../src/server/index.js';
import { parsePlatform } from '../../src/scheduler/index.js';
import { parseWorkflowText } from '../../src/workflow/index.js';
import { SqliteStore } from '../../src/store/index.js';
import { tempDir, warrenBin, repoRoot, sharedDir } from '../helpers.js';

const platformYaml = `
currency: USD
sites:
  slow:
    nodes: 1
    cores: 1
    speed: 1
    price: 0
  fast:
    nodes: 1
    cores: 1
    speed: 4
    price: 0
links:
  - {from: slow, to: fast, bandwidth: 1Gbps, latency: 1ms, price-per-gb: 0}
data:
  default: slow
`;

const chain = `version: v1
jobs:
  a:
    command: [/bin/true]
    estimate: 100s
  b:
    command: [/bin/true]
    estimate: 100s
    requires: [a]
`;

describe('plan placement', () => {
  test('places jobs at the planned site and re-plans when an estimate was wrong', () => {
    const platform = parsePlatform(platformYaml, 'p.yaml');
    const { workflow } = parseWorkflowText(chain, 'flow.yaml');
    const p = new PlanPlacement(workflow!, platform, {}, 0, 1);
    // The fastest plan puts both at the fast site (4x speed): 25 s each.
    assert.equal(p.siteOf('a'), 'fast');
    assert.equal(p.speedOf('fast', 'a'), 4);
    assert.equal(p.current.makespan, 50);
    p.started('a', 0);
    // a ran as estimated (25 s at speed 4): no re-plan
    assert.equal(p.ended('a', 25_000), null);
    p.started('b', 25_000);
    // b took 4x longer than planned: re-plan (nothing else left, but the estimate is learned)
    const msg = p.ended('b', 125_000);
    assert.match(msg ?? '', /b took 100\.0s instead of 25\.0s: re-planned the rest/);
    assert.equal(p.replans, 1);
  });

  test('small absolute deviations (start-up noise) do not re-plan', () => {
    const platform = parsePlatform(platformYaml, 'p.yaml');
    const { workflow } = parseWorkflowText(chain, 'flow.yaml');
    const p = new PlanPlacement(workflow!, platform, {}, 0, 0.001);
    p.started('a', 0);
    assert.equal(p.ended('a', 100), null); // 100 plan-seconds vs 25 planned, but only 0.1 s of wall time
  });

  test('warren run --simulate --platform replays a WfFormat trace across sites', { timeout: 120_000 }, async () => {
    const t = tempDir();
    try {
      const home = join(t.dir, 'home');
      const r = spawnSync('node', [warrenBin, 'run', join(sharedDir, 'wfcommons', 'blast-chameleon-small-001.json'), '--simulate', '0.002', '--platform', join(repoRoot, 'examples', 'platform.yaml'), '--json'], {
        env: { ...process.env, WARREN_HOME: home },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^plan: makespan \d+s, cost [\d.]+ USD, sites /m);
      const out = JSON.parse(r.stdout);
      assert.equal(out.status, 'succeeded');
      assert.equal(out.jobs.length, 43);
      const store = new SqliteStore(join(home, 'warren.db'));
      const events = await store.events(out.id);
      await store.close();
      const placed = events.filter((e) => / placed at /.test(e.message));
      assert.equal(placed.length, 43);
      const sites = new Set(placed.map((e) => e.message.split(' placed at ')[1]));
      for (const s of sites) assert.ok(['campus-hpc', 'campus-gpu', 'aws-us-east-1', 'gcp-europe-west4'].includes(s!), s);
    } finally {
      t.cleanup();
    }
  });

  test('a replay runs jobs bigger than this machine, and image jobs as host sleeps', { timeout: 60_000 }, () => {
    const t = tempDir();
    try {
      const f = join(t.dir, 'flow.yaml');
      writeFileSync(
        f,
        `version: v1
volumes:
  d: {reference: volume://user/ephemeral}
jobs:
  wide:
    command: [/bin/true]
    estimate: 10s
    resource: {cpu: {cores: 32}}
  img:
    image: {uri: docker://registry.invalid/never/pulled:1}
    command: [/bin/true]
    estimate: 5s
    mounts: {d: {location: /data}}
`,
      );
      const r = spawnSync('node', [warrenBin, 'run', f, '--simulate', '0.01', '--platform', join(repoRoot, 'examples', 'platform.yaml'), '--json'], { env: { ...process.env, WARREN_HOME: join(t.dir, 'h') }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).status, 'succeeded');
    } finally {
      t.cleanup();
    }
  });

  test('--platform without --simulate is refused with what to do', () => {
    const t = tempDir();
    try {
      const f = join(t.dir, 'flow.yaml');
      writeFileSync(f, chain);
      const r = spawnSync('node', [warrenBin, 'run', f, '--platform', join(repoRoot, 'examples', 'platform.yaml')], { env: { ...process.env, WARREN_HOME: join(t.dir, 'h') }, encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /error\[CLI_BAD_OPTION\].*\n  hint: add --simulate/);
    } finally {
      t.cleanup();
    }
  });
});
