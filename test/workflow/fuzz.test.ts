// Fuzzing the workflow reader: random mutations of real inputs (examples/*.yaml, the
// Fuzzball examples and WfFormat instances in ../shared, test/workflow/fixtures) give diagnostics or a WarrenError
// with a code, never another exception or a hang. Seeded (WARREN_FUZZ_SEED to vary it) and
// bounded in runs and time.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { CORE_SCHEMA, load as loadYaml } from 'js-yaml';
import { loadWorkflowFile, parseWorkflowText } from '../../src/workflow/index.js';
import { isWarrenError } from '../../src/common/index.js';
import { repoRoot, sharedDir, tempDir } from '../helpers.js';

function files(dir: string, re: RegExp, maxBytes: number): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (re.test(n) && st.size <= maxBytes) out.push(p);
    }
  };
  walk(dir);
  return out;
}

const corpus = [
  ...files(join(repoRoot, 'examples'), /\.ya?ml$/, 64 * 1024),
  ...files(join(sharedDir, 'fuzzball-examples'), /\.(ya?ml|fz)$/, 64 * 1024),
  ...files(join(repoRoot, 'test', 'workflow', 'fixtures'), /\.ya?ml$/, 64 * 1024),
  ...files(join(sharedDir, 'wfcommons'), /\.json$/, 120 * 1024),
].map((f) => ({ f, text: readFileSync(f, 'utf8') }));

/** Tokens that have broken readers before, or are meant to. */
const TOKENS = [
  '\0', '\\0', '\\x00', '\\u0000', '\\ud800', '\ud800', '\ufffd', '1e20', '-1', '9007199254740993', '0x10', '0o7', '.inf', '.nan',
  '__proto__', 'constructor', 'prototype', 'toString', ':', ': ', '- ', '-', '{', '}', '[', ']', ',', '"', "'", '\t', '\n', '\r\n', '  ', '#',
  '&a ', '*a', '<<: *a', '!!binary ', '!!js/function ', '!!python/object ', '? ', '|', '>', '---\n', '...\n', '~', 'null', 'true',
  'x'.repeat(300), '{"a": ', '[[[[[[[[[[', 'task-array: {start: 0, end: 4000001}', 'version: v4', 'version: v1', '%YAML 1.1\n',
  'file://', 'volume://', 'readiness-probe: {}', 'port-name: ', 'use: ',
];

type Mutation = { at: number; del: number; insert: string };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  del: fc.nat({ max: 40 }),
  insert: fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 4 })),
});

function mutate(text: string, ms: Mutation[]): string {
  let t = text;
  for (const m of ms) {
    const at = Math.floor(m.at * t.length);
    t = t.slice(0, at) + m.insert + t.slice(Math.min(t.length, at + m.del));
  }
  return t;
}

/** Parse; anything but diagnostics (with positions) or a WarrenError with a code fails. */
function check(text: string, file: string): void {
  try {
    const r = parseWorkflowText(text, file);
    assert.ok(Array.isArray(r.diagnostics));
    if (!r.workflow) assert.ok(r.diagnostics.some((d) => d.severity === 'error'), 'no workflow means an error');
    for (const d of r.diagnostics) {
      assert.ok(Number.isInteger(d.line) && d.line >= 1 && Number.isInteger(d.col) && d.col >= 1, `position of ${d.message}`);
      assert.equal(typeof d.message, 'string');
    }
  } catch (e) {
    if (isWarrenError(e) && typeof e.code === 'string' && e.code !== 'WARREN_INTERNAL') return;
    throw e;
  }
}

const seed = process.env.WARREN_FUZZ_SEED ? Number(process.env.WARREN_FUZZ_SEED) : 20260701;

describe('workflow reader fuzzing', () => {
  test('the corpus is there', () => {
    assert.ok(corpus.length >= 15, `corpus of ${corpus.length} files`);
    assert.ok(corpus.some((c) => c.f.endsWith('.json')) && corpus.some((c) => c.f.includes('fuzzball-examples')));
  });

  test('random mutations of real inputs never crash the reader', { timeout: 120_000 }, () => {
    fc.assert(
      fc.property(fc.nat({ max: corpus.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 }), (i, ms) => {
        const { f, text } = corpus[i]!;
        check(mutate(text, ms), f);
      }),
      { seed, numRuns: 400, interruptAfterTimeLimit: 60_000, markInterruptAsFailure: false },
    );
  });

  test('random mutations of the parsed values never crash the validator', { timeout: 120_000 }, () => {
    const small = corpus.filter((c) => c.text.length < 16 * 1024);
    const value = fc.oneof(
      fc.constantFrom<unknown>(null, true, 0, -1, 1e20, 2 ** 53 + 1, NaN, '', '\0', '__proto__', [], {}, { __proto__: null }, 'x'.repeat(1000)),
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.jsonValue({ maxDepth: 2 }),
    );
    fc.assert(
      fc.property(fc.nat({ max: small.length - 1 }), fc.array(fc.tuple(fc.nat(), value), { minLength: 1, maxLength: 4 }), (i, edits) => {
        const { f, text } = small[i]!;
        let doc: unknown;
        try {
          doc = f.endsWith('.json') ? JSON.parse(text) : loadYaml(text, { schema: CORE_SCHEMA });
        } catch {
          return; // (examples/broken.yaml)
        }
        const nodes: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
        const walk = (v: unknown): void => {
          if (nodes.length > 2000 || typeof v !== 'object' || v === null) return;
          for (const [k, x] of Object.entries(v)) {
            nodes.push({ parent: v as Record<string, unknown>, key: Array.isArray(v) ? Number(k) : k });
            walk(x);
          }
        };
        walk(doc);
        for (const [n, val] of edits) {
          if (nodes.length === 0) break;
          const { parent, key } = nodes[n % nodes.length]!;
          (parent as Record<string | number, unknown>)[key] = val;
        }
        check(JSON.stringify(doc), f.endsWith('.json') ? f : `${f}.json`);
      }),
      { seed, numRuns: 300, interruptAfterTimeLimit: 45_000, markInterruptAsFailure: false },
    );
  });

  test('mutated files on disk: loadWorkflowFile throws only WarrenErrors with a code', { timeout: 60_000 }, () => {
    const t = tempDir('warren-fuzz-');
    try {
      const f = join(t.dir, 'flow.yaml');
      fc.assert(
        fc.property(fc.nat({ max: corpus.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.nat(), (i, bytes, at) => {
          const b = Buffer.from(corpus[i]!.text, 'utf8');
          const p = at % (b.length + 1);
          writeFileSync(f, Buffer.concat([b.subarray(0, p), bytes, b.subarray(p)]));
          try {
            loadWorkflowFile(f);
          } catch (e) {
            assert.ok(isWarrenError(e), `not a WarrenError: ${(e as Error)?.stack ?? String(e)}`);
            assert.match(e.code, /^SPEC_[A-Z0-9_]+$/);
          }
        }),
        { seed, numRuns: 150, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: false },
      );
    } finally {
      t.cleanup();
    }
  });
});
