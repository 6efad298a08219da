// Workflow parsing speed: Warren's parseWorkflowText (parse + full validation + conversion)
// against the baseline of only parsing the same YAML with the `yaml` package (parseDocument,
// the usual way to get positioned nodes). Run: node --import tsx bench/workflow/run.ts [--jobs 10000]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { parseWorkflowText } from '../../src/workflow/index.js';
import { sharedDir } from '../../test/helpers.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('jobs', 10_000);
const ROUNDS = arg('rounds', 5);

function median(f: () => void): number {
  const xs: number[] = [];
  f(); // warm up
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    f();
    xs.push(performance.now() - t0);
  }
  return xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

function workflow(n: number, mistake: boolean): string {
  const parts = ['version: v1\nvolumes:\n  data: {reference: volume://user/ephemeral}\ndefaults:\n  job:\n    env: {STAGE: bench}\n    mounts:\n      data: {location: /data}\njobs:\n'];
  for (let i = 0; i < n; i++) {
    const req = i === 0 ? '' : `\n    requires: [job${i - 1}${i >= 10 ? `, job${i - 10}` : ''}]`;
    parts.push(`  job${i}:\n    command: [echo, "${i}"]${req}\n    resource:\n      cpu: {cores: 2}\n      memory: {size: 1GiB}\n    policy:\n      retry: {attempts: 2}\n`);
  }
  let text = parts.join('');
  if (mistake) text = text.replace(`requires: [job${n - 2}, job${n - 11}]`, `requires: [job${n - 2}, jb${n - 11}]`);
  return text;
}

const rows: [string, string, number, number][] = [];
const ok = workflow(N, false);
const bad = workflow(N, true);
const yamlOnly = (t: string) => () => void parseDocument(t, { lineCounter: new LineCounter() });
rows.push([`${N} jobs, valid`, `${(ok.length / 1e6).toFixed(1)} MB`, median(() => void parseWorkflowText(ok, 'b.yaml')), median(yamlOnly(ok))]);
rows.push([`${N} jobs, one error`, `${(bad.length / 1e6).toFixed(1)} MB`, median(() => void parseWorkflowText(bad, 'b.yaml')), median(yamlOnly(bad))]);
const montage = readFileSync(join(sharedDir, 'wfcommons', 'montage-chameleon-2mass-05d-001.json'), 'utf8');
rows.push(['WfFormat montage, 1738 tasks', `${(montage.length / 1e6).toFixed(1)} MB`, median(() => void parseWorkflowText(montage, 'm.json')), median(yamlOnly(montage))]);

console.log('| input | size | warren parse+validate (ms) | yaml parseDocument only (ms) | ratio |');
console.log('| --- | --- | --- | --- | --- |');
for (const [name, size, w, y] of rows) console.log(`| ${name} | ${size} | ${w.toFixed(0)} | ${y.toFixed(0)} | ${(w / y).toFixed(2)}× |`);
