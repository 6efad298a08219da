// CLI contexts: the contexts file (0600 in a 0700 directory, written atomically), where a
// command goes (--local > --context > WARREN_CONTEXT > current > this machine), unknown
// contexts, CA files, and `warren context` through the real binary (tokens never printed).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { WarrenError } from '../../src/common/index.js';
import {
  addContext,
  addTargetOptions,
  contextsPath,
  listContexts,
  readContexts,
  removeContext,
  resolveTarget,
  useContext,
} from '../../src/cli/contexts.js';
import { tempDir, warrenBin } from '../helpers.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n';

function setup(): { env: NodeJS.ProcessEnv; dir: string; ca: string; cleanup: () => void } {
  const t = tempDir('warren-ctx-');
  const env: NodeJS.ProcessEnv = { XDG_CONFIG_HOME: join(t.dir, 'config'), HOME: join(t.dir, 'home') };
  const ca = join(t.dir, 'ca.crt');
  writeFileSync(ca, PEM);
  return { env, dir: t.dir, ca, cleanup: t.cleanup };
}

function code(f: () => unknown): WarrenError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof WarrenError, String(e));
    assert.ok(e.hint, `${e.code} has a hint`);
    return e;
  }
  assert.fail('expected an error');
}

describe('the contexts file', () => {
  test('lives under $XDG_CONFIG_HOME/warren (else ~/.config/warren); a relative XDG_CONFIG_HOME is ignored', () => {
    assert.equal(contextsPath({ XDG_CONFIG_HOME: '/x/cfg', HOME: '/h' }), '/x/cfg/warren/contexts.json');
    assert.equal(contextsPath({ HOME: '/h' }), '/h/.config/warren/contexts.json');
    assert.equal(contextsPath({ XDG_CONFIG_HOME: 'rel', HOME: '/h' }), '/h/.config/warren/contexts.json');
  });

  test('is written with mode 0600 in a 0700 directory, atomically, and reads back', () => {
    const s = setup();
    try {
      assert.deepEqual(readContexts(s.env), { current: null, contexts: {} }, 'no file: no contexts');
      // A directory that exists with looser permissions is tightened.
      mkdirSync(join(s.env.XDG_CONFIG_HOME!, 'warren'), { recursive: true, mode: 0o755 });
      const r = addContext('prod', { server: 'https://warren.example.org:8443/', token: 'wt_secret', ca: s.ca }, s.env);
      assert.deepEqual(r, { replaced: false, context: { server: 'https://warren.example.org:8443', token: 'wt_secret', ca: s.ca } });
      const file = contextsPath(s.env);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(s.env.XDG_CONFIG_HOME!, 'warren')).mode & 0o777, 0o700);
      assert.deepEqual(readdirSync(join(s.env.XDG_CONFIG_HOME!, 'warren')), ['contexts.json'], 'no temporary file left');
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {
        current: null,
        contexts: { prod: { server: 'https://warren.example.org:8443', token: 'wt_secret', ca: s.ca } },
      });
      assert.equal(addContext('prod', { server: 'https://other:1', token: 't2' }, s.env).replaced, true);
      assert.equal(statSync(file).mode & 0o777, 0o600, 'still 0600 after a rewrite');
      assert.deepEqual(readContexts(s.env).contexts.prod, { server: 'https://other:1', token: 't2' });
    } finally {
      s.cleanup();
    }
  });

  test('add checks the URL, the token and the CA file before writing anything', () => {
    const s = setup();
    try {
      assert.equal(code(() => addContext('a', { server: 'http://h:1', token: 't' }, s.env)).code, 'API_BAD_URL');
      assert.equal(code(() => addContext('a', { server: 'not a url', token: 't' }, s.env)).code, 'API_BAD_URL');
      assert.equal(code(() => addContext('a', { server: 'https://u:p@h:1', token: 't' }, s.env)).code, 'API_BAD_URL');
      assert.equal(code(() => addContext('a', { server: 'https://h:1', token: 't t' }, s.env)).code, 'CLI_BAD_OPTION');
      assert.equal(code(() => addContext('a/b', { server: 'https://h:1', token: 't' }, s.env)).code, 'CLI_BAD_OPTION');
      const missing = code(() => addContext('a', { server: 'https://h:1', token: 't', ca: join(s.dir, 'nope.pem') }, s.env));
      assert.equal(missing.code, 'CLI_CONTEXT_CA');
      assert.match(missing.message, /nope\.pem/);
      const key = join(s.dir, 'key.pem');
      writeFileSync(key, '-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n');
      assert.equal(code(() => addContext('a', { server: 'https://h:1', token: 't', ca: key }, s.env)).code, 'CLI_CONTEXT_CA');
      assert.equal(existsSync(contextsPath(s.env)), false, 'nothing written');
    } finally {
      s.cleanup();
    }
  });

  test('use, list (no tokens), remove; removing the current one leaves none current', () => {
    const s = setup();
    try {
      addContext('b', { server: 'https://b:1', token: 'tb' }, s.env);
      addContext('a', { server: 'https://a:1', token: 'ta', ca: s.ca }, s.env);
      useContext('b', s.env);
      const list = listContexts(s.env);
      assert.deepEqual(list, [
        { name: 'a', server: 'https://a:1', ca: s.ca, current: false },
        { name: 'b', server: 'https://b:1', ca: null, current: true },
      ]);
      assert.ok(!JSON.stringify(list).includes('tb'));
      assert.equal(code(() => useContext('c', s.env)).code, 'CLI_UNKNOWN_CONTEXT');
      assert.deepEqual(removeContext('b', s.env), { wasCurrent: true });
      assert.equal(readContexts(s.env).current, null);
      assert.deepEqual(removeContext('a', s.env), { wasCurrent: false });
      assert.equal(code(() => removeContext('a', s.env)).code, 'CLI_UNKNOWN_CONTEXT');
    } finally {
      s.cleanup();
    }
  });

  test('a damaged file is CLI_CONTEXTS_INVALID naming it', () => {
    const s = setup();
    try {
      const file = contextsPath(s.env);
      mkdirSync(join(s.env.XDG_CONFIG_HOME!, 'warren'), { recursive: true });
      for (const text of ['{not json', '[]', '{"current": 5}', '{"contexts": {"a": {"server": "https://a"}}}', '{"contexts": {"a b": {"server": "https://a", "token": "t"}}}']) {
        writeFileSync(file, text);
        const e = code(() => readContexts(s.env));
        assert.equal(e.code, 'CLI_CONTEXTS_INVALID', text);
        assert.ok(e.message.includes(file), e.message);
        assert.equal(code(() => resolveTarget({}, s.env)).code, 'CLI_CONTEXTS_INVALID');
      }
      assert.deepEqual(resolveTarget({ local: true }, s.env), { kind: 'embedded' }, '--local does not read it');
    } finally {
      s.cleanup();
    }
  });
});

describe('resolveTarget', () => {
  test('--local > --context > WARREN_CONTEXT > the current context > this machine', () => {
    const s = setup();
    try {
      assert.deepEqual(resolveTarget({}, s.env), { kind: 'embedded' }, 'no file: this machine');
      addContext('one', { server: 'https://one:1', token: 't1' }, s.env);
      addContext('two', { server: 'https://two:2/warren', token: 't2', ca: s.ca }, s.env);
      addContext('three', { server: 'https://three:3', token: 't3' }, s.env);
      assert.deepEqual(resolveTarget({}, s.env), { kind: 'embedded' }, 'contexts but none current: this machine');
      useContext('one', s.env);
      assert.deepEqual(resolveTarget({}, s.env), { kind: 'server', name: 'one', url: 'https://one:1', token: 't1' });
      const env = { ...s.env, WARREN_CONTEXT: 'two' };
      assert.deepEqual(resolveTarget({}, env), { kind: 'server', name: 'two', url: 'https://two:2/warren', token: 't2', caPem: PEM });
      assert.equal((resolveTarget({ context: 'three' }, env) as { name: string }).name, 'three');
      assert.deepEqual(resolveTarget({ context: 'three', local: true }, env), { kind: 'embedded' });
      assert.deepEqual(resolveTarget({ local: true }, s.env), { kind: 'embedded' });
      assert.equal((resolveTarget({}, { ...s.env, WARREN_CONTEXT: '' }) as { name: string }).name, 'one', 'an empty WARREN_CONTEXT is unset');
    } finally {
      s.cleanup();
    }
  });

  test('an unknown context is CLI_UNKNOWN_CONTEXT, from wherever it was named, with the known names', () => {
    const s = setup();
    try {
      const none = code(() => resolveTarget({ context: 'prod' }, s.env));
      assert.equal(none.code, 'CLI_UNKNOWN_CONTEXT');
      assert.equal(none.exitCode, 2);
      assert.match(none.hint!, /no contexts yet: warren context add/);
      addContext('prod', { server: 'https://p:1', token: 't' }, s.env);
      addContext('dev', { server: 'https://d:1', token: 't' }, s.env);
      const e = code(() => resolveTarget({ context: 'prd' }, s.env));
      assert.match(e.message, /no context "prd" \(--context\)/);
      assert.match(e.hint!, /did you mean "prod"\? known contexts: dev, prod/);
      const fromEnv = code(() => resolveTarget({}, { ...s.env, WARREN_CONTEXT: 'staging' }));
      assert.match(fromEnv.message, /\(WARREN_CONTEXT\)/);
      // A current context whose entry was removed by hand.
      const file = contextsPath(s.env);
      const f = JSON.parse(readFileSync(file, 'utf8'));
      f.current = 'gone';
      writeFileSync(file, JSON.stringify(f));
      assert.match(code(() => resolveTarget({}, s.env)).message, /no context "gone" \(the current context\)/);
    } finally {
      s.cleanup();
    }
  });

  test("a context's CA file is read when it is used: gone is CLI_CONTEXT_CA", () => {
    const s = setup();
    try {
      addContext('p', { server: 'https://p:1', token: 't', ca: s.ca }, s.env);
      assert.equal((resolveTarget({ context: 'p' }, s.env) as { caPem: string }).caPem, PEM);
      rmSync(s.ca);
      assert.equal(code(() => resolveTarget({ context: 'p' }, s.env)).code, 'CLI_CONTEXT_CA');
    } finally {
      s.cleanup();
    }
  });

  test('addTargetOptions gives a command --context and --local, which resolveTarget reads', () => {
    const s = setup();
    try {
      addContext('p', { server: 'https://p:1', token: 't' }, s.env);
      const parse = (args: string[]): Record<string, unknown> => {
        const cmd = addTargetOptions(new Command('status').exitOverride().argument('[id]'));
        cmd.parse(args, { from: 'user' });
        return cmd.opts();
      };
      assert.deepEqual(parse(['x', '--context', 'p']), { context: 'p' });
      assert.equal((resolveTarget(parse(['--context', 'p']), s.env) as { url: string }).url, 'https://p:1');
      assert.deepEqual(resolveTarget(parse(['--local', '--context', 'p']), s.env), { kind: 'embedded' });
    } finally {
      s.cleanup();
    }
  });
});

describe('warren context', () => {
  test('add, use, list, remove through the CLI; tokens are never printed; WARREN_HOME is not created', () => {
    const s = setup();
    try {
      const home = join(s.dir, 'warren-home');
      const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
        const r = spawnSync(process.execPath, [warrenBin, 'context', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...s.env, WARREN_HOME: home, WARREN_CONTEXT: '', ...extra } });
        return { code: r.status, out: r.stdout, err: r.stderr };
      };
      const secret = 'wt_verysecret_0123456789';
      let r = run(['add', 'prod', '--server', 'https://warren.example.org:8443', '--token', secret, '--ca', s.ca]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /context "prod" added: https:\/\/warren\.example\.org:8443/);
      r = run(['add', 'dev', '--server', 'https://dev:1', '--token', secret]);
      assert.equal(r.code, 0, r.err);
      r = run(['use', 'prod']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /current context: prod/);
      r = run(['list']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^\*\s+prod\s+https:\/\/warren\.example\.org:8443/m);
      assert.match(r.out, /^\s+dev\s+https:\/\/dev:1\s+-$/m);
      r = run(['list', '--json']);
      assert.deepEqual(
        (JSON.parse(r.out) as Array<{ name: string; current: boolean }>).map((c) => [c.name, c.current]),
        [
          ['dev', false],
          ['prod', true],
        ],
      );
      r = run(['list'], { WARREN_CONTEXT: 'dev' });
      assert.match(r.out, /WARREN_CONTEXT=dev is set/);
      r = run(['use', 'prd']);
      assert.equal(r.code, 2);
      assert.match(r.err, /error\[CLI_UNKNOWN_CONTEXT\]: no context "prd"/);
      assert.match(r.err, /hint: did you mean "prod"\?/);
      r = run(['add', 'x', '--server', 'http://x:1', '--token', 't']);
      assert.equal(r.code, 2);
      assert.match(r.err, /error\[API_BAD_URL\]/);
      r = run(['add', 'x', '--server', 'https://x:1']);
      assert.equal(r.code, 2, 'a missing --token is a usage error');
      r = run(['remove', 'prod']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /no context is current now/);
      r = run(['list']);
      assert.match(r.out, /no current context/);
      for (const out of [r.out, r.err]) assert.ok(!out.includes(secret));
      assert.equal(existsSync(home), false, 'warren context does not create WARREN_HOME');
      assert.equal(statSync(contextsPath(s.env)).mode & 0o777, 0o600);
    } finally {
      s.cleanup();
    }
  });
});
