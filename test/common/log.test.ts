// The logger: JSON lines that parse, readable lines, levels, fields carried by children, and
// plain callbacks (the subsystems' `log` options) wrapped without losing fields.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { attemptFields, createLogger, toLogger, type LogFields } from '../../src/common/index.js';

describe('logger', () => {
  const capture = (format: 'json' | 'text', level?: 'debug' | 'info' | 'warn' | 'error') => {
    const lines: string[] = [];
    const log = createLogger({ format, ...(level ? { level } : {}), write: (l) => lines.push(l), now: () => Date.UTC(2026, 0, 2, 3, 4, 5, 6) });
    return { log, lines };
  };

  test('JSON: one object per line with time, level, msg and the fields; a child adds its fields to every line', () => {
    const { log, lines } = capture('json');
    const run = log.child({ workflowId: 'w1' });
    const att = run.child({ job: 'a[3]', attemptId: 'w1/a[3]/2' });
    att.info('started "quoted"\nand a newline', { node: 'n1', pid: 42 });
    run.warn('outage', { workflowId: 'w2', msg: 'not mine', time: 'no' });
    log.error('plain');
    assert.equal(lines.length, 3);
    for (const l of lines) assert.ok(l.endsWith('\n') && !l.slice(0, -1).includes('\n'), 'one line each');
    const [a, b, c] = lines.map((l) => JSON.parse(l) as LogFields);
    assert.deepEqual(a, { time: '2026-01-02T03:04:05.006Z', level: 'info', msg: 'started "quoted"\nand a newline', workflowId: 'w1', job: 'a[3]', attemptId: 'w1/a[3]/2', node: 'n1', pid: 42 });
    assert.deepEqual(b, { time: '2026-01-02T03:04:05.006Z', level: 'warn', msg: 'outage', workflowId: 'w2' }, 'a field wins over the parent\'s; time, level, msg cannot be replaced');
    assert.deepEqual(c, { time: '2026-01-02T03:04:05.006Z', level: 'error', msg: 'plain' });
  });

  test('levels: below the level nothing is written, and enabled() says so', () => {
    const { log, lines } = capture('json', 'warn');
    log.debug('d');
    log.info('i');
    log('warn', 'w');
    log.error('e');
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as { msg: string }).msg), ['w', 'e']);
    assert.deepEqual([log.enabled('debug'), log.enabled('info'), log.enabled('warn'), log.child({ a: 1 }).enabled('error')], [false, false, true, true]);
    const dbg = capture('json', 'debug');
    dbg.log.debug('d');
    assert.equal(dbg.lines.length, 1);
  });

  test('text: TIME LEVEL msg key=value, values with spaces or quotes quoted; undefined and null fields left out', () => {
    const { log, lines } = capture('text');
    log.child({ workflowId: 'w1' }).info('attempt failed', { attemptId: 'w1/a/1', reason: 'exit code 3', exitCode: 3, gone: undefined, none: null, err: new Error('boom') });
    assert.equal(lines[0], '2026-01-02T03:04:05.006Z info attempt failed workflowId=w1 attemptId=w1/a/1 reason="exit code 3" exitCode=3 err=boom\n');
  });

  test('a field that cannot be written (a cycle) drops the fields, never the line; bigint and errors are written', () => {
    const { log, lines } = capture('json');
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    log.info('cyclic', { cyc });
    log.info('values', { n: 10n, e: Object.assign(new Error('bad'), { code: 'X_Y' }) });
    assert.deepEqual(JSON.parse(lines[0]!), { time: '2026-01-02T03:04:05.006Z', level: 'info', msg: 'cyclic' });
    assert.deepEqual((JSON.parse(lines[1]!) as LogFields).n, '10');
    assert.deepEqual((JSON.parse(lines[1]!) as LogFields).e, { message: 'bad', code: 'X_Y' });
  });

  test('toLogger wraps a plain callback (fields kept, children merged); a Logger is returned as it is; none writes nothing', () => {
    const got: Array<[string, string, LogFields | undefined]> = [];
    const l = toLogger((level, msg, fields) => got.push([level, msg, fields]));
    l.child({ workflowId: 'w' }).warn('x', { job: 'j' });
    l('info', 'y');
    assert.deepEqual(got, [['warn', 'x', { workflowId: 'w', job: 'j' }], ['info', 'y', undefined]]);
    const real = createLogger({ write: () => {} });
    assert.equal(toLogger(real), real);
    const none = toLogger(undefined);
    none.error('nothing');
    assert.equal(none.enabled('error'), false);
  });

  test('attemptFields splits an attempt id into workflowId, job (the unit key) and attemptId', () => {
    assert.deepEqual(attemptFields('wf1/many[7]/2'), { workflowId: 'wf1', job: 'many[7]', attemptId: 'wf1/many[7]/2' });
    assert.deepEqual(attemptFields('wf1/@ingress:data/1'), { workflowId: 'wf1', job: '@ingress:data', attemptId: 'wf1/@ingress:data/1' });
    assert.deepEqual(attemptFields('wf1/mpi/1#2'), { workflowId: 'wf1', job: 'mpi', attemptId: 'wf1/mpi/1#2' });
    assert.deepEqual(attemptFields('odd'), { attemptId: 'odd' });
  });
});
