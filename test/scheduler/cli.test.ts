// `warren plan` and `warren site` through a commander program built here (as src/cli wires
// them), on real files: a WfCommons instance, the bench platform, a temporary WARREN_HOME.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { isWarrenError } from '../../src/common/index.js';
import { register } from '../../src/cli/commands/plan.js';
import { repoRoot, sharedDir, tempDir } from '../helpers.js';

const blast = join(sharedDir, 'wfcommons', 'blast-chameleon-small-001.json');
const benchPlatform = join(repoRoot, 'bench', 'planner', 'platform.yaml');

interface Out {
  stdout: string;
  stderr: string;
  exitCode: number;
}

async function warren(args: string[]): Promise<Out> {
  const program = new Command('warren').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  let stdout = '';
  let stderr = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'warren', ...args]);
    return { stdout, stderr, exitCode: typeof process.exitCode === 'number' ? process.exitCode : 0 };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
    process.exitCode = before;
  }
}

async function fails(args: string[], code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(warren(args), (e: unknown) => {
    assert.ok(isWarrenError(e), String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, pattern);
    assert.ok(e.hint);
    return true;
  });
}

describe('warren plan', () => {
  test('--json prints makespan, cost, jobs and transfers', async () => {
    const r = await warren(['plan', blast, '--platform', benchPlatform, '--json']);
    assert.equal(r.exitCode, 0);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(j).slice(0, 2), ['makespan', 'cost']);
    assert.equal(j.jobs.length, 43);
    assert.deepEqual(Object.keys(j.jobs[0]).sort(), ['end', 'id', 'instanceType', 'site', 'start']);
    assert.ok(j.makespan > 0 && j.cost >= 0);
    for (const job of j.jobs) assert.ok(job.end <= j.makespan + 1e-9 && job.start >= 0);
    for (const t of j.transfers) assert.deepEqual(Object.keys(t).sort(), ['bytes', 'end', 'file', 'from', 'start', 'to']);
  });

  test('text output: totals and why every job goes where it goes', async () => {
    const r = await warren(['plan', blast, '--platform', benchPlatform]);
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout, /^plan for makeflow-blast-small on .*platform\.yaml \(objective: fastest\)\nmakespan \S+ \(\d+\.\d s\), cost \d+\.\d+ USD/);
    assert.equal((r.stdout.match(/^ {4}why: /gm) ?? []).length, 43);
    assert.match(r.stdout, /why: data gravity: \d+% of/);
  });

  test('a deadline that cannot be met: the earliest finish and its cost, exit 1', async () => {
    const r = await warren(['plan', blast, '--platform', benchPlatform, '--deadline', '10s', '--json']);
    assert.equal(r.exitCode, 1);
    const j = JSON.parse(r.stdout);
    assert.equal(j.deadlineMet, false);
    assert.match(r.stderr, /deadline \(10s\) cannot be met: the earliest feasible finish is .* at a cost of \d+\.\d+ USD/);
  });

  test('a generous deadline is met at no more cost', async () => {
    const fast = JSON.parse((await warren(['plan', blast, '--platform', benchPlatform, '--json'])).stdout);
    const r = await warren(['plan', blast, '--platform', benchPlatform, '--deadline', '2h', '--json']);
    assert.equal(r.exitCode, 0);
    const j = JSON.parse(r.stdout);
    assert.equal(j.deadlineMet, true);
    assert.ok(j.makespan <= 7200 && j.cost <= fast.cost);
  });

  test('bad input: options, missing files', async () => {
    await fails(['plan', blast, '--platform', benchPlatform, '--deadline', 'soon'], 'PLAN_BAD_OPTION', /--deadline: cannot read "soon"/);
    await fails(['plan', blast, '--platform', benchPlatform, '--budget', '-3'], 'PLAN_BAD_OPTION', /--budget: "-3"/);
    await fails(['plan', blast, '--platform', '/nonexistent/p.yaml'], 'PLAN_PLATFORM_NOT_FOUND', /\/nonexistent\/p\.yaml: no such file/);
  });
});

describe('warren site', () => {
  let home: { dir: string; cleanup: () => void };
  const saved = process.env.WARREN_HOME;
  before(() => {
    home = tempDir('warren-site-');
    process.env.WARREN_HOME = home.dir;
  });
  after(() => {
    if (saved === undefined) delete process.env.WARREN_HOME;
    else process.env.WARREN_HOME = saved;
    home.cleanup();
  });

  test('without sites: list says so, plan needs --platform', async () => {
    assert.match((await warren(['site', 'list'])).stdout, /no sites yet/);
    await fails(['plan', blast], 'PLAN_PLATFORM_NOT_FOUND', /the server platform .*platform\.yaml: no such file/);
  });

  test('add a platform file, list, plan with the server sites, remove', async () => {
    const r = await warren(['site', 'add', benchPlatform]);
    assert.match(r.stdout, /added onprem, aws-us-east-1, gcp-europe-west4 to /);
    assert.ok(existsSync(join(home.dir, 'platform.yaml')));
    const list = await warren(['site', 'list']);
    assert.match(list.stdout, /onprem\s+cluster\s+4 nodes x 48 cores/);
    assert.match(list.stdout, /aws-us-east-1\s+cloud\s+c6i\.4xlarge: <=16 x 16 cores, boot 1m30s/);
    assert.match(list.stdout, /onprem -> aws-us-east-1\s+10\.00 Gbps\s+15\.0 ms/);
    const js = JSON.parse((await warren(['site', 'list', '--json'])).stdout);
    assert.deepEqual(js.sites.map((s: { name: string }) => s.name), ['onprem', 'aws-us-east-1', 'gcp-europe-west4']);

    // The server's sites plan exactly like the file they came from.
    const viaServer = JSON.parse((await warren(['plan', blast, '--json'])).stdout);
    const viaFile = JSON.parse((await warren(['plan', blast, '--platform', benchPlatform, '--json'])).stdout);
    assert.deepEqual(viaServer, viaFile);

    await fails(['site', 'add', benchPlatform], 'PLAN_SITE_EXISTS', /site "onprem" already exists/);
    const add = await warren(['site', 'add', '--name', 'lab', '--nodes', '2', '--cores', '8', '--memory', '32GiB', '--price', '0.02']);
    assert.match(add.stdout, /added lab/);
    assert.match((await warren(['site', 'list'])).stdout, /lab\s+cluster\s+2 nodes x 8 cores, 32\.0GiB\/node\s+1\s+0\.02 USD\/core-hour/);
    // A file with only sites (and links) can be added: the server already has `data:`.
    const extra = join(home.dir, 'extra.yaml');
    writeFileSync(extra, 'sites:\n  azure-west:\n    instance-types:\n      d8: {cores: 8, price: 0.4, max: 4, boot: 1m}\nlinks:\n  - {from: azure-west, to: onprem, bandwidth: 2Gbps, latency: 30ms, price-per-gb: 0.08}\n');
    assert.match((await warren(['site', 'add', extra])).stdout, /added azure-west/);
    const withAzure = JSON.parse((await warren(['site', 'list', '--json'])).stdout);
    assert.equal(withAzure.data.default, 'onprem');
    assert.ok(withAzure.sites.some((s: { name: string }) => s.name === 'azure-west'));
    const onprem = withAzure.sites.find((s: { name: string }) => s.name === 'onprem');
    assert.deepEqual([onprem.nodes, onprem.cores], [4, 48], 'the placeholder did not replace the real site');
    assert.ok(withAzure.links.some((l: { from: string; to: string }) => l.from === 'azure-west' && l.to === 'onprem'));
    writeFileSync(extra, 'sites:\n  mars:\n    instance-types:\n      d8: {cores: 8, price: 0.4, max: 4}\nlinks:\n  - {from: mars, to: venus, bandwidth: 1Gbps}\n');
    await fails(['site', 'add', extra], 'PLAN_UNKNOWN_SITE', /extra\.yaml:6:22: links\[0\]\.to names unknown site "venus"/);
    await fails(['site', 'add', '--name', 'x', '--nodes', 'many', '--cores', '2'], 'PLAN_BAD_OPTION', /--nodes: "many" is not a number/);
    await fails(['site', 'add', '--name', 'x', '--nodes', '1', '--cores', '2', '--price', '-1'], 'PLAN_NEGATIVE_PRICE', /sites\.x\.price is negative/);
    await fails(['site', 'remove', 'onprem'], 'PLAN_SITE_IN_USE', /holds data \(data\.default\)/);
    await fails(['site', 'remove', 'nowhere'], 'PLAN_UNKNOWN_SITE', /no site "nowhere"/);
    assert.match((await warren(['site', 'remove', 'gcp-europe-west4'])).stdout, /removed gcp-europe-west4/);
    const after = readFileSync(join(home.dir, 'platform.yaml'), 'utf8');
    assert.doesNotMatch(after, /gcp-europe-west4/);
    assert.match(after, /aws-us-east-1/);
    assert.doesNotMatch(after, /to: gcp-europe-west4|from: gcp-europe-west4/, 'its links went with it');
  });

  test('the last site cannot be removed', async () => {
    const { dir, cleanup } = tempDir('warren-site-');
    const saved2 = process.env.WARREN_HOME;
    process.env.WARREN_HOME = dir;
    try {
      await warren(['site', 'add', '--name', 'solo', '--nodes', '1', '--cores', '4']);
      await fails(['site', 'remove', 'solo'], 'PLAN_LAST_SITE', /"solo" is the only site/);
      await fails(['site', 'add'], 'PLAN_BAD_OPTION', /nothing to add/);
      await fails(['site', 'add', '--name', 'x'], 'PLAN_BAD_OPTION', /--nodes and --cores are required/);
    } finally {
      process.env.WARREN_HOME = saved2;
      cleanup();
    }
  });

  test('a bad platform file is rejected and nothing is written', async () => {
    const before = readFileSync(join(home.dir, 'platform.yaml'), 'utf8');
    const bad = join(home.dir, 'bad.yaml');
    writeFileSync(bad, 'sites:\n  z: { nodes: 1, cores: 4 }\nlinks:\n  - { from: z, to: mars, bandwidth: 1Gbps }\ndata: { default: z }\n');
    await fails(['site', 'add', bad], 'PLAN_UNKNOWN_SITE', /bad\.yaml:4:20: links\[0\]\.to names unknown site "mars"/);
    assert.equal(readFileSync(join(home.dir, 'platform.yaml'), 'utf8'), before);
  });
});
