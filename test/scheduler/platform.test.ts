// The platform format, the example and the bench platform, and bad input: every error names
// the thing (and line:col for YAML) and exits with 2.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isWarrenError } from '../../src/common/index.js';
import { computeRoutes, dataSite, lowerBound, parsePlatform, planWorkflow, platformToObject } from '../../src/scheduler/index.js';
import { stringify } from 'yaml';
import { repoRoot } from '../helpers.js';
import { workflow } from './fixtures.js';

function rejects(fn: () => unknown, code: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isWarrenError(e), `not a WarrenError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, 2);
    assert.ok(e.hint && e.hint.length > 10, 'has a hint');
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

const GOOD = `
currency: USD
sites:
  hpc:
    kind: cluster
    nodes: 10
    cores: 32
    memory: 192GiB
    gpus: 0
    speed: 1.0
    price: 0
  aws:
    instance-types:
      c5: { cores: 16, memory: 32GiB, speed: 1.3, price: 0.68, spot-price: 0.25, max: 8, boot: 90s }
    billing: { granularity: 1h, minimum: 1h }
links:
  - { from: hpc, to: aws, bandwidth: 10Gbps, latency: 20ms, price-per-gb: 0 }
  - { from: aws, to: hpc, bandwidth: 10Gbps, latency: 20ms, price-per-gb: 0.09 }
data:
  default: hpc
  locations:
    "s3://genomes/": aws
    "s3://genomes/hpc-mirror/": hpc
`;

describe('parsePlatform', () => {
  test('reads every key', () => {
    const p = parsePlatform(GOOD, 'good.yaml');
    assert.equal(p.currency, 'USD');
    assert.deepEqual(p.sites.hpc, { kind: 'cluster', name: 'hpc', nodes: 10, cores: 32, memoryBytes: 192 * 2 ** 30, gpus: 0, speed: 1, price: 0 });
    assert.deepEqual(p.sites.aws, {
      kind: 'cloud',
      name: 'aws',
      instanceTypes: { c5: { name: 'c5', cores: 16, memoryBytes: 32 * 2 ** 30, gpus: 0, speed: 1.3, price: 0.68, spotPrice: 0.25, max: 8, bootSec: 90 } },
      billing: { granularitySec: 3600, minimumSec: 3600 },
    });
    assert.deepEqual(p.links[1], { from: 'aws', to: 'hpc', bandwidth: 1.25e9, latencySec: 0.02, pricePerGB: 0.09 });
    assert.equal(dataSite(p, 's3://genomes/x.fa'), 'aws');
    assert.equal(dataSite(p, 's3://genomes/hpc-mirror/x.fa'), 'hpc', 'longest prefix wins');
    assert.equal(dataSite(p, 'input.fa'), 'hpc');
  });

  test('routes: a link works both ways, and data can go through a third site', () => {
    const p = parsePlatform(
      'sites:\n  A: {nodes: 1, cores: 1}\n  B: {nodes: 1, cores: 1}\n  C: {nodes: 1, cores: 1}\nlinks:\n  - {from: A, to: B, bandwidth: 1GB/s, latency: 1s, price-per-gb: 0.5}\n  - {from: B, to: C, bandwidth: 100MB/s, latency: 2s, price-per-gb: 0.25}\ndata: {default: A}\n',
      'r.yaml',
    );
    const r = computeRoutes(p);
    assert.deepEqual(r.get('C')!.get('A'), { from: 'C', to: 'A', hops: ['C', 'B', 'A'], bandwidth: 1e8, latencySec: 3, pricePerGB: 0.75 });
    assert.equal(r.get('B')!.get('A')!.pricePerGB, 0.5);
  });

  test('a file of sites to add may name sites defined elsewhere and leave out data', () => {
    const text = 'sites:\n  new: {nodes: 1, cores: 2}\nlinks:\n  - {from: new, to: hpc, bandwidth: 1Gbps}\n';
    rejects(() => parsePlatform(text, 'add.yaml'), 'PLAN_UNKNOWN_SITE', /add\.yaml:4:21: links\[0\]\.to names unknown site "hpc"/);
    const p = parsePlatform(text, 'add.yaml', { otherSites: ['hpc'], dataOptional: true });
    assert.deepEqual(Object.keys(p.sites), ['new']);
    assert.equal(p.links[0]!.to, 'hpc');
    assert.equal(p.data.default, 'new');
  });

  test('round trip through platformToObject', () => {
    const p = parsePlatform(GOOD, 'good.yaml');
    const again = parsePlatform(stringify(platformToObject(p)), 'again.yaml');
    assert.deepEqual({ ...again, file: '' }, { ...p, file: '' });
  });

  test('the documented example and the bench platform parse and plan', () => {
    for (const f of ['examples/platform.yaml', 'bench/planner/platform.yaml']) {
      const p = parsePlatform(readFileSync(join(repoRoot, f), 'utf8'), f);
      assert.ok(Object.keys(p.sites).length >= 3, f);
      const wf = workflow({ a: { est: 60 }, b: { est: 60, after: ['a'] } });
      const plan = planWorkflow(wf, p);
      assert.ok(plan.makespan >= lowerBound(wf, p) - 1e-9, f);
      assert.ok(plan.makespan <= 120, `${f}: two 60 s jobs take at most 120 s on the reference cores`);
    }
  });
});

describe('bad platforms', () => {
  test('an unknown site in a link', () => {
    const text = GOOD.replace('{ from: hpc, to: aws,', '{ from: hpc, to: azure,');
    rejects(() => parsePlatform(text, 'p.yaml'), 'PLAN_UNKNOWN_SITE', /^p\.yaml:17:22: links\[0\]\.to names unknown site "azure"/);
  });

  test('an unknown site in data', () => {
    const text = GOOD.replace('"s3://genomes/": aws', '"s3://genomes/": gcp');
    rejects(() => parsePlatform(text, 'p.yaml'), 'PLAN_UNKNOWN_SITE', /p\.yaml:22:22: data\.locations\.s3:\/\/genomes\/ names unknown site "gcp"/);
    rejects(() => parsePlatform(GOOD.replace('default: hpc', 'default: nowhere'), 'p.yaml'), 'PLAN_UNKNOWN_SITE', /data\.default names unknown site "nowhere"/);
  });

  test('negative prices', () => {
    rejects(() => parsePlatform(GOOD.replace('price: 0\n', 'price: -1\n'), 'p.yaml'), 'PLAN_NEGATIVE_PRICE', /p\.yaml:11:12: sites\.hpc\.price is negative \(-1\)/);
    rejects(() => parsePlatform(GOOD.replace('price: 0.68', 'price: -0.68'), 'p.yaml'), 'PLAN_NEGATIVE_PRICE', /sites\.aws\.instance-types\.c5\.price is negative/);
    rejects(() => parsePlatform(GOOD.replace('spot-price: 0.25', 'spot-price: -2'), 'p.yaml'), 'PLAN_NEGATIVE_PRICE', /spot-price is negative/);
    rejects(() => parsePlatform(GOOD.replace('price-per-gb: 0.09', 'price-per-gb: -0.09'), 'p.yaml'), 'PLAN_NEGATIVE_PRICE', /links\[1\]\.price-per-gb is negative/);
  });

  test('YAML syntax errors have line:col', () => {
    rejects(() => parsePlatform('sites:\n  a: [1, 2\n', 'bad.yaml'), 'PLAN_PLATFORM_YAML', /^bad\.yaml:3:1: /);
  });

  test('unknown keys, bad values, missing keys, empty files', () => {
    rejects(() => parsePlatform(GOOD.replace('gpus: 0', 'gpu: 0'), 'p.yaml'), 'PLAN_PLATFORM_INVALID', /p\.yaml:9:5: unknown key "gpu" in sites\.hpc/);
    rejects(() => parsePlatform(GOOD.replace('bandwidth: 10Gbps, latency: 20ms, price-per-gb: 0 }', 'bandwidth: fast, latency: 20ms, price-per-gb: 0 }'), 'p.yaml'), 'PLAN_BAD_VALUE', /links\[0\]\.bandwidth: cannot read "fast"/);
    rejects(() => parsePlatform(GOOD.replace('boot: 90s', 'boot: soon'), 'p.yaml'), 'PLAN_BAD_VALUE', /boot: cannot read "soon"/);
    rejects(() => parsePlatform(GOOD.replace('    nodes: 10\n', ''), 'p.yaml'), 'PLAN_PLATFORM_INVALID', /sites\.hpc needs "nodes"/);
    rejects(() => parsePlatform(GOOD.replace('nodes: 10', 'nodes: 2.5'), 'p.yaml'), 'PLAN_PLATFORM_INVALID', /sites\.hpc\.nodes must be a whole number/);
    rejects(() => parsePlatform(GOOD.replace('speed: 1.0', 'speed: 0'), 'p.yaml'), 'PLAN_PLATFORM_INVALID', /sites\.hpc\.speed must be > 0/);
    rejects(() => parsePlatform(GOOD.replace('kind: cluster', 'kind: grid'), 'p.yaml'), 'PLAN_PLATFORM_INVALID', /kind must be "cluster", "cloud" or "slurm"/);
    rejects(() => parsePlatform('sites: {}\ndata: {default: x}\n', 'p.yaml'), 'PLAN_PLATFORM_INVALID', /no sites/);
    rejects(() => parsePlatform('', 'p.yaml'), 'PLAN_PLATFORM_INVALID', /p\.yaml: the platform file is empty/);
    rejects(() => parsePlatform('sites:\n  a: {nodes: 1, cores: 1}\n', 'p.yaml'), 'PLAN_PLATFORM_INVALID', /needs "data"/);
    rejects(() => parsePlatform(GOOD.replace('from: aws, to: hpc', 'from: aws, to: aws'), 'p.yaml'), 'PLAN_PLATFORM_INVALID', /links site "aws" to itself/);
    rejects(() => parsePlatform(GOOD.replace('from: aws, to: hpc', 'from: hpc, to: aws'), 'p.yaml'), 'PLAN_PLATFORM_INVALID', /a second link from "hpc" to "aws"/);
  });
});

describe('workflows the platform cannot run', () => {
  const p = parsePlatform(
    `
sites:
  A: { nodes: 4, cores: 16, memory: 64GiB }
  G: { nodes: 1, cores: 8, gpus: 2, memory: 128GiB }
data:
  default: A
`,
    'nolinks.yaml',
  );

  test('a job needing more cores than any site has', () => {
    rejects(() => planWorkflow(workflow({ big: { cores: 64 } }), p), 'PLAN_NO_FEASIBLE_SITE', /job "big" needs 64 cores \(the largest node or instance has 16\)/, /A: needs 64 cores, a node has 16/);
  });

  test('a job needing more GPUs than any site has', () => {
    rejects(() => planWorkflow(workflow({ train: { gpus: 4 } }), p), 'PLAN_NO_FEASIBLE_SITE', /job "train" needs 4 GPUs \(the most on one node or instance is 2\)/, /G: needs 4 GPUs, a node has 2/);
  });

  test('a job needing more memory than any node has', () => {
    rejects(() => planWorkflow(workflow({ fat: { memoryBytes: 2 ** 40 } }), p), 'PLAN_NO_FEASIBLE_SITE', /job "fat"/, /A: needs 1\.0TiB memory, a node has 64\.0GiB/, /G: needs 1\.0TiB memory, a node has 128\.0GiB/);
  });

  test('an unreachable data location', () => {
    rejects(
      () => planWorkflow(workflow({ train: { gpus: 1, inputs: ['images.tar'] } }, { 'images.tar': 1e9 }), p),
      'PLAN_DATA_UNREACHABLE',
      /job "train" needs images\.tar, which lives at site "A"/,
      /G: input images\.tar at A cannot reach it \(no link\)/,
    );
  });

  test('an intermediate file that cannot reach the next job', () => {
    // make runs only on A (16 cores), train only on G (GPU); no link between them.
    const wf = workflow({ make: { cores: 16, outputs: ['x'] }, train: { gpus: 1, inputs: ['x'], after: ['make'] } }, { x: 10 });
    rejects(() => planWorkflow(wf, p), 'PLAN_DATA_UNREACHABLE', /job "train" cannot get its inputs \(x\)/);
  });

  test('cycles through files, unknown requirements, bad estimates and policies', () => {
    rejects(() => planWorkflow(workflow({ a: { inputs: ['y'], outputs: ['x'] }, b: { inputs: ['x'], outputs: ['y'] } }), p), 'PLAN_CYCLE', /a, b/);
    rejects(() => planWorkflow(workflow({ a: { after: ['ghost'] } }), p), 'PLAN_UNKNOWN_JOB', /requires unknown job "ghost"/);
    rejects(() => planWorkflow(workflow({ a: {} }), p, { estimates: { a: -5 } }), 'PLAN_BAD_ESTIMATE', /job "a"/);
    rejects(() => planWorkflow(workflow({ a: {} }), p, { budget: -1 }), 'PLAN_BAD_POLICY', /budget -1/);
  });
});
