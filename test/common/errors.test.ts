// The error catalog: every code is declared once in src/common/codes.ts (exit code, HTTP
// status) and docs/errors/*.md lists exactly those codes, each in the table its prefix
// belongs to (docs/errors.md's index). Also: the wire form crosses a boundary intact.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, WarrenError, EXIT } from '../../src/common/index.js';
import { repoRoot } from '../helpers.js';

const docsDir = join(repoRoot, 'docs', 'errors');
function documented(): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const f of readdirSync(docsDir).filter((f) => f.endsWith('.md'))) {
    for (const line of readFileSync(join(docsDir, f), 'utf8').split('\n')) {
      const r = /^\| `([A-Z][A-Z0-9_]+)`/.exec(line);
      if (r) m.set(r[1]!, [...(m.get(r[1]!) ?? []), f]);
    }
  }
  return m;
}

describe('error catalog', () => {
  it('docs/errors lists exactly the codes declared in code, each once', () => {
    const docs = documented();
    const declared = Object.keys(ERROR_CODES).sort();
    const missing = declared.filter((c) => !docs.has(c));
    const stale = [...docs.keys()].filter((c) => !(c in ERROR_CODES)).sort();
    const twice = [...docs].filter(([, fs]) => fs.length > 1).map(([c, fs]) => `${c} (${fs.join(', ')})`);
    assert.deepEqual(missing, [], `declared in src/common/codes.ts but not in docs/errors/*.md: ${missing.join(', ')}`);
    assert.deepEqual(stale, [], `in docs/errors/*.md but not declared in src/common/codes.ts: ${stale.join(', ')}`);
    assert.deepEqual(twice, [], `documented more than once: ${twice.join(', ')}`);
  });

  it('every table of docs/errors is reachable from the index in docs/errors.md', () => {
    const index = readFileSync(join(repoRoot, 'docs', 'errors.md'), 'utf8');
    for (const f of readdirSync(docsDir).filter((f) => f.endsWith('.md'))) assert.match(index, new RegExp(`errors/${f.replace('.', '\\.')}`), f);
  });

  it('every code has a known exit code and an HTTP error status', () => {
    for (const [code, c] of Object.entries(ERROR_CODES)) {
      assert.ok(([EXIT.failed, EXIT.usage, EXIT.canceled] as number[]).includes(c.exit), `${code}: exit ${c.exit}`);
      assert.ok(c.http >= 400 && c.http <= 599, `${code}: http ${c.http}`);
      assert.match(code, /^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/, code);
    }
  });

  it('an error takes its exit code and HTTP status from the catalog', () => {
    const e = new WarrenError('RUN_NOT_FOUND', 'no workflow x', { hint: 'see `warren list`' });
    assert.equal(e.exitCode, ERROR_CODES.RUN_NOT_FOUND.exit);
    assert.equal(e.httpStatus, ERROR_CODES.RUN_NOT_FOUND.http);
  });

  it('crosses a process boundary as structure {code, message, hint, details}', () => {
    const e = new WarrenError('RUN_NOT_FOUND', 'no workflow x', { hint: 'see `warren list`', details: { id: 'x', n: 1 }, cause: new Error('inner') });
    const wire = JSON.parse(JSON.stringify(e.toWire())) as unknown;
    assert.deepEqual(wire, { code: 'RUN_NOT_FOUND', message: 'no workflow x', hint: 'see `warren list`', details: { id: 'x', n: 1 } });
    const back = WarrenError.fromWire(wire);
    assert.equal(back.code, 'RUN_NOT_FOUND');
    assert.equal(back.exitCode, e.exitCode);
    assert.equal(back.hint, e.hint);
    assert.deepEqual(back.details, { id: 'x', n: 1 });
    assert.equal(back.format(), e.format());
  });

  it('a code from a newer peer keeps its text; garbage becomes WARREN_INTERNAL', () => {
    const back = WarrenError.fromWire({ code: 'FUTURE_THING', message: 'new', hint: 'h' });
    assert.equal(back.code, 'FUTURE_THING');
    assert.equal(back.exitCode, EXIT.failed);
    assert.equal(WarrenError.fromWire('nonsense').code, 'WARREN_INTERNAL');
    assert.equal(WarrenError.fromWire(null).message, 'unknown error from a remote peer');
  });
});
