// The definition-file parser (src/build/deffile.ts): Apptainer's own definition files, every
// section, multi-stage, %arguments, and bad input reported at file:line:col with a hint.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import { parseBuildArgFile, parseBuildArgs, parseDefinition, looksLikeDefinition, REFUSED_BOOTSTRAPS } from '../../src/build/index.js';
import { sharedDir } from '../helpers.js';

const testdata = join(sharedDir, 'apptainer-testdata');
const noShared = existsSync(testdata) ? false : `${testdata} is missing (see ../shared/README.md)`;

function fails(text: string, code: string, where: [number, number], msg?: RegExp, opts: Parameters<typeof parseDefinition>[2] = {}): WarrenError {
  let err: unknown;
  try {
    parseDefinition(text, 'r.def', opts);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof WarrenError, `expected ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.ok(err.message.startsWith(`r.def:${where[0]}:${where[1]}: `), err.message);
  assert.ok(err.hint && err.hint.length > 10, 'has a hint');
  if (msg) assert.match(err.message, msg);
  return err;
}

describe('definition files: Apptainer examples', { skip: noShared }, () => {
  const examples = join(testdata, 'examples');
  const files: string[] = [];
  for (const d of existsSync(examples) ? readdirSync(examples) : []) {
    const dir = join(examples, d);
    if (!statSync(dir).isDirectory()) continue;
    for (const f of readdirSync(dir)) if (/^Apptainer/.test(f) || f.endsWith('.def')) files.push(join(dir, f));
  }

  it('parses every example: supported bootstraps parse, the others are refused by name', () => {
    assert.ok(files.length >= 10, `found ${files.length} examples`);
    let parsed = 0;
    let refused = 0;
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      assert.ok(looksLikeDefinition(text), f);
      try {
        const r = parseDefinition(text, f);
        assert.ok(r.stages.length >= 1, f);
        parsed++;
      } catch (e) {
        const err = e as WarrenError;
        assert.equal(err.code, 'BUILD_BOOTSTRAP_UNSUPPORTED', `${f}: ${err.message}`);
        const bs = /bootstrap "([^"]+)"/.exec(err.message)![1]!.toLowerCase();
        assert.ok(REFUSED_BOOTSTRAPS[bs], bs);
        assert.match(err.message, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
        refused++;
      }
    }
    assert.ok(parsed >= 6 && refused >= 4, `parsed ${parsed}, refused ${refused}`);
  });

  it("Apptainer's e2e definition file: every section and the SCIF apps", () => {
    const r = parseDefinition(readFileSync(join(testdata, 'e2e-testdata.def'), 'utf8'), 'e2e.def');
    assert.equal(r.stages.length, 1);
    const s = r.stages[0]!;
    assert.equal(s.bootstrap, 'oras');
    assert.equal(s.header.from!.value, 'ghcr.io/apptainer/alpine:3.15.0');
    assert.deepEqual(s.labels, { maintainer: '"Apptainer Team <tsc@apptainer.org>"' });
    assert.match(s.help!.body, /export BAD_GUY=Thanos/);
    assert.match(s.environment!.body, /AVENGERS=assemble/);
    assert.match(s.setup!.body, /mknod \$APPTAINER_ROOTFS\/dev\/null c 1 3/);
    assert.match(s.post!.body, /apk add nmap-ncat/);
    assert.match(s.runscript!.body, /exec "\$@"/);
    assert.match(s.startscript!.body, /nc -l -k -p \$1 -e \/bin\/cat/);
    assert.equal(s.test!.body, '    exec "$@"\n');
    assert.deepEqual(s.apps.map((a) => a.name), ['testapp', 'foo', 'bar']);
    const foo = s.apps.find((a) => a.name === 'foo')!;
    assert.equal(foo.help!.body, 'This is the help for foo!\n');
    assert.deepEqual(foo.labels, { HELLOTHISIS: 'foo' });
    assert.match(foo.env!.body, /HELLOTHISIS=foo/);
    assert.match(foo.run!.body, /RUNNING FOO/);
    assert.match(foo.start!.body, /STARTING FOO/);
    assert.match(foo.install!.body, /touch filefoo.exec/);
    assert.equal(s.setup!.pos.line, 18);
  });

  it('multistage example: two stages, %files from the first', () => {
    const r = parseDefinition(readFileSync(join(examples, 'multistage', 'Apptainer'), 'utf8'), 'm.def');
    assert.deepEqual(r.stages.map((s) => [s.name, s.bootstrap]), [['one', 'docker'], ['two', 'oras']]);
    assert.equal(r.stages[1]!.files[0]!.from, 'one');
    assert.deepEqual(r.stages[1]!.files[0]!.entries.map((e) => [e.src, e.dest]), [['/root/hello', '/bin/hello']]);
    // The comment block before the second stage's header is not part of the first stage's %post.
    assert.doesNotMatch(r.stages[0]!.post!.body, /Second Stage/);
    assert.equal(r.stages[1]!.runscript!.body.trim(), 'hello');
  });

  it('a trailing comment on a header value is not part of it', () => {
    const r = parseDefinition(readFileSync(join(examples, 'docker', 'Apptainer'), 'utf8'), 'd.def');
    assert.equal(r.stages[0]!.header.from!.value, 'busybox:latest');
  });
});

describe('definition files: parsing', () => {
  it('headers are case-insensitive; %files with quotes; -c shell; repeated sections append', () => {
    const r = parseDefinition(
      [
        '# a comment',
        'BOOTSTRAP: docker',
        'from: debian:12',
        '',
        '%files',
        '    a.txt',
        '    "with space.txt" /opt/x.txt',
        '    # comment',
        '%post -c /bin/bash',
        '    echo one',
        '%post',
        '    echo two',
        '%labels',
        '    A 1',
        '    B two words',
        '%runscript',
        '  %notasection indented',
      ].join('\n'),
      'r.def',
    );
    const s = r.stages[0]!;
    assert.equal(s.bootstrap, 'docker');
    assert.deepEqual(s.files[0]!.entries.map((e) => [e.src, e.dest, e.pos.line, e.pos.col]), [['a.txt', 'a.txt', 6, 5], ['with space.txt', '/opt/x.txt', 7, 5]]);
    assert.equal(s.post!.shell, '/bin/bash');
    assert.equal(s.post!.body, '    echo one\n    echo two\n');
    assert.deepEqual(s.labels, { A: '1', B: 'two words' });
    assert.equal(s.runscript!.body, '  %notasection indented\n');
    assert.equal(s.header.from!.pos.line, 3);
    assert.equal(s.header.from!.pos.col, 7);
  });

  it('%arguments defaults, --build-arg overrides, unused build args are warned about', () => {
    const text = ['Bootstrap: docker', 'From: {{ BASE }}:{{VERSION}}', '%arguments', '  BASE=debian', '  VERSION="12"', '%post', '  echo {{ VERSION }} {{ OTHER }}'].join('\n');
    const r = parseDefinition(text, 'r.def', { buildArgs: { OTHER: 'x', UNUSED: 'y' } });
    assert.equal(r.stages[0]!.header.from!.value, 'debian:12');
    assert.equal(r.stages[0]!.post!.body, '  echo 12 x\n');
    assert.deepEqual(r.args, { BASE: 'debian', VERSION: '12', OTHER: 'x' });
    assert.deepEqual(r.unusedArgs, ['UNUSED']);
    assert.ok(r.warnings.some((w) => /UNUSED/.test(w)));
    const r2 = parseDefinition(text, 'r.def', { buildArgs: { VERSION: '13', OTHER: '' } });
    assert.equal(r2.stages[0]!.header.from!.value, 'debian:13');
    assert.match(r2.text, /From: debian:13/);
    // Not a build argument reference: left alone.
    const r3 = parseDefinition('Bootstrap: scratch\n%post\n  docker inspect -f "{{.Id}}" x\n', 'r.def');
    assert.match(r3.stages[0]!.post!.body, /\{\{\.Id\}\}/);
  });

  it('an unset build argument without a default is an error at its position', () => {
    const e = fails('Bootstrap: docker\nFrom: debian:12\n%post\n    echo {{ NAME }}\n', 'BUILD_ARG_MISSING', [4, 10], /NAME/);
    assert.match(e.hint!, /--build-arg NAME=VALUE/);
  });

  it('build arguments: NAME=VALUE from the command line and from a file', () => {
    assert.deepEqual(parseBuildArgs(['A=1', 'B=x=y', 'C=']), { A: '1', B: 'x=y', C: '' });
    assert.throws(() => parseBuildArgs(['novalue']), (e: WarrenError) => e.code === 'BUILD_ARG_INVALID' && /novalue/.test(e.message));
    assert.throws(() => parseBuildArgs(['1A=2']), (e: WarrenError) => e.code === 'BUILD_ARG_INVALID');
    assert.deepEqual(parseBuildArgFile('# c\nA=1\n\nB = two \n', 'args'), { A: '1', B: 'two' });
    assert.throws(() => parseBuildArgFile('A=1\nbad line\n', 'args'), (e: WarrenError) => e.code === 'BUILD_ARG_INVALID' && e.message.startsWith('args:2:1: '));
    fails('Bootstrap: scratch\n%arguments\n  good=1\n  not an arg\n', 'BUILD_ARG_INVALID', [4, 3]);
  });

  it('multi-stage: names, %files from an earlier stage only', () => {
    const ok = 'Bootstrap: scratch\nStage: a\n%post\n  true\n\nBootstrap: scratch\nStage: b\n%files from a\n  /x /y\n';
    assert.equal(parseDefinition(ok, 'r.def').stages.length, 2);
    fails('Bootstrap: scratch\nStage: a\n%files from nope\n  /x\n', 'BUILD_DEF_UNKNOWN_STAGE', [3, 1], /no stage named "nope"/);
    fails('Bootstrap: scratch\nStage: a\n%files from a\n  /x\n', 'BUILD_DEF_UNKNOWN_STAGE', [3, 1], /itself/);
    fails('Bootstrap: scratch\nStage: a\n%files from b\n  /x\nBootstrap: scratch\nStage: b\n', 'BUILD_DEF_UNKNOWN_STAGE', [3, 1], /later/);
    fails('Bootstrap: scratch\nStage: a\n\nBootstrap: scratch\nStage: a\n', 'BUILD_DEF_SYNTAX', [5, 8], /defined twice/);
  });
});

describe('definition files: bad input', () => {
  it('an empty file or only comments', () => {
    fails('', 'BUILD_DEF_NO_BOOTSTRAP', [1, 1], /empty/);
    fails('# nothing\n\n', 'BUILD_DEF_NO_BOOTSTRAP', [1, 1]);
  });

  it('a section before any header', () => {
    fails('\n%post\n  echo hi\n', 'BUILD_DEF_NO_BOOTSTRAP', [2, 1], /section before any "Bootstrap:"/);
  });

  it('a header that does not start with Bootstrap (with a suggestion for a typo)', () => {
    const e = fails('From: debian\nBootstrap: docker\n', 'BUILD_DEF_NO_BOOTSTRAP', [1, 1], /"From:"/);
    assert.match(e.hint!, /Bootstrap: docker/);
    const t = fails('Bootstarp: docker\n', 'BUILD_DEF_NO_BOOTSTRAP', [1, 1]);
    assert.match(t.hint!, /did you mean "Bootstrap"/);
  });

  it('unknown section, with a suggestion', () => {
    const e = fails('Bootstrap: scratch\n%post\n  true\n%enviroment\n  A=1\n', 'BUILD_DEF_UNKNOWN_SECTION', [4, 1], /%enviroment/);
    assert.match(e.hint!, /did you mean "%environment"/);
    fails('Bootstrap: scratch\n%files\n/a\n%bogus\n', 'BUILD_DEF_UNKNOWN_SECTION', [4, 1]);
  });

  it('missing From: for docker, oras, localimage', () => {
    for (const b of ['docker', 'oras', 'localimage']) {
      const e = fails(`Bootstrap: ${b}\n\n%post\n  true\n`, 'BUILD_DEF_MISSING_FROM', [1, 12], new RegExp(`Bootstrap: ${b}`));
      assert.match(e.hint!, /From:/);
    }
    fails('Bootstrap: docker\nFrom:\n', 'BUILD_DEF_MISSING_FROM', [2, 6]);
  });

  it('refused bootstraps are named, unknown ones get a suggestion', () => {
    for (const b of ['yum', 'zypper', 'library', 'shub', 'dnf', 'arch', 'self', 'docker-daemon']) {
      const e = fails(`Bootstrap: ${b}\nFrom: x\n`, 'BUILD_BOOTSTRAP_UNSUPPORTED', [1, 12], new RegExp(`bootstrap "${b}" is not supported`));
      assert.ok(e.hint!.length > 20);
    }
    const e = fails('Bootstrap: dockr\nFrom: x\n', 'BUILD_BOOTSTRAP_UNKNOWN', [1, 12], /unknown bootstrap "dockr"/);
    assert.match(e.hint!, /did you mean "docker"/);
    fails('Bootstrap:\n', 'BUILD_DEF_SYNTAX', [1, 11], /no value/);
  });

  it('header lines that are not Key: value, duplicate keys, a second Bootstrap in one header', () => {
    fails('Bootstrap: docker\nFrom debian\n', 'BUILD_DEF_SYNTAX', [2, 1], /not "Key: value"/);
    fails('Bootstrap: docker\nFrom: a\nfrom: b\n', 'BUILD_DEF_SYNTAX', [3, 1], /twice/);
    // A second Bootstrap: starts the next stage, even without sections between.
    fails('Bootstrap: docker\nFrom: a\nBootstrap: oras\n', 'BUILD_DEF_MISSING_FROM', [3, 12], /Bootstrap: oras/);
    fails('Bootstrap: docker\nFrom: a\n  %post\n', 'BUILD_DEF_SYNTAX', [3, 3], /beginning of the line/);
    fails('Bootstrap: docker\nFrom: a\nStage: bad/name\n', 'BUILD_DEF_SYNTAX', [3, 8], /stage name/);
  });

  it('section arguments: app names, -c, %files from', () => {
    fails('Bootstrap: scratch\n%appinstall\n  true\n', 'BUILD_DEF_SYNTAX', [2, 1], /needs the name of the app/);
    fails('Bootstrap: scratch\n%apprun a b\n', 'BUILD_DEF_SYNTAX', [2, 11], /one app name/);
    fails('Bootstrap: scratch\n%apprun ../x\n', 'BUILD_DEF_SYNTAX', [2, 9], /not a name/);
    fails('Bootstrap: scratch\n%post bash\n', 'BUILD_DEF_SYNTAX', [2, 7], /-c SHELL/);
    fails('Bootstrap: scratch\n%post -c bash\n', 'BUILD_DEF_SYNTAX', [2, 7], /absolute path/);
    fails('Bootstrap: scratch\n%files into x\n', 'BUILD_DEF_SYNTAX', [2, 8], /%files from STAGE/);
    fails('Bootstrap: scratch\n%files\n  "unterminated /x\n', 'BUILD_DEF_SYNTAX', [3, 3], /unterminated quote/);
    fails('Bootstrap: scratch\n%files\n  a b c\n', 'BUILD_DEF_SYNTAX', [3, 3], /3 words/);
    fails('Bootstrap: scratch\n%labels x\n', 'BUILD_DEF_SYNTAX', [2, 9]);
  });

  it('unknown header keys are warned about, not refused', () => {
    const r = parseDefinition('Bootstrap: docker\nFrom: a\nFingerprint: x\n', 'r.def');
    assert.ok(r.warnings.some((w) => /r\.def:3:1: header key "Fingerprint"/.test(w) && /fingerprints/i.test(w)), r.warnings.join('\n'));
  });

  it('a comment after a section name is not an argument', () => {
    const r = parseDefinition('Bootstrap: scratch\n%post   # install things\n  true\n', 'r.def', {});
    assert.equal(r.stages[0]!.post!.shell, undefined);
    assert.equal(r.stages[0]!.post!.body, '  true\n');
  });

  it('CRLF line ends and a BOM are accepted', () => {
    const r = parseDefinition('\uFEFFBootstrap: docker\r\nFrom: debian:12\r\n%post\r\n  echo hi\r\n', 'r.def');
    assert.equal(r.stages[0]!.header.from!.value, 'debian:12');
    assert.equal(r.stages[0]!.post!.body, '  echo hi\n');
  });
});
