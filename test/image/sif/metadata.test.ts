// `warren image inspect --deffile --labels --runscript --startscript --environment --test
// --helpfile [--json]`: Apptainer's metadata, from an Apptainer-built SIF (its Def.FILE and
// inspect-metadata.json objects), from a sandbox directory (/.singularity.d), and from a
// Warren-built SIF (labels from its image config).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, sharedDir } from '../../helpers.js';
import { readImageConfig, readSifMetadata } from '../../../src/image/index.js';
import { cli } from './util.js';

const BUSYBOX = join(sharedDir, 'apptainer-testdata', 'busybox_amd64.sif');

describe('image inspect: Apptainer metadata', () => {
  test("Apptainer's busybox SIF: definition file, labels, runscript, startscript, environment scripts", () => {
    const { dir, cleanup } = tempDir('warren-meta-');
    try {
      const env = { WARREN_HOME: join(dir, 'home') };
      const def = cli(['image', 'inspect', '--deffile', BUSYBOX], env);
      assert.equal(def.code, 0, def.stderr);
      assert.equal(def.stdout, 'BootStrap: docker\nFrom: busybox:1.33.1\n');
      const labels = cli(['image', 'inspect', '--labels', BUSYBOX], env);
      assert.match(labels.stdout, /^org\.label-schema\.build-arch: amd64$/m);
      assert.match(labels.stdout, /^org\.label-schema\.usage\.singularity\.deffile\.from: busybox:1\.33\.1$/m);
      assert.equal(labels.stdout.trim().split('\n').length, 6);
      const run = cli(['image', 'inspect', '-r', BUSYBOX], env);
      assert.match(run.stdout, /^#!\/bin\/sh\n/);
      assert.match(run.stdout, /OCI_CMD='"sh"'/);
      const envs = cli(['image', 'inspect', '--environment', BUSYBOX], env);
      assert.match(envs.stdout, /^=== \/\.singularity\.d\/env\/10-docker2singularity\.sh ===\n#!\/bin\/sh\nexport PATH=/);
      assert.ok(envs.stdout.indexOf('10-docker2singularity') < envs.stdout.indexOf('90-environment'), 'in the order they are sourced');
      // Several at once: each under its own heading; one the image lacks is said on stderr.
      const both = cli(['image', 'inspect', '--startscript', '--test', BUSYBOX], env);
      assert.equal(both.code, 0);
      assert.equal(both.stdout, '==startscript==\n#!/bin/sh\n==test==\n');
      assert.match(both.stderr, /has no %test script/);
      // --json: Apptainer's shape, with the fields asked for.
      const j = JSON.parse(cli(['image', 'inspect', '--json', '--labels', '--deffile', BUSYBOX], env).stdout) as { type: string; data: { attributes: Record<string, unknown> } };
      assert.equal(j.type, 'container');
      assert.deepEqual(Object.keys(j.data.attributes).sort(), ['deffile', 'labels']);
      assert.equal((j.data.attributes.labels as Record<string, string>)['org.label-schema.usage.singularity.version'], '3.8.1');
      // Without a metadata option, inspect still lists the descriptors.
      assert.match(cli(['image', 'inspect', BUSYBOX], env).stdout, /Def\.FILE[\s\S]*inspect-metadata\.json/);
    } finally {
      cleanup();
    }
  });

  test("Apptainer's oci-config.json gives the image config (env, cmd) to Warren", () => {
    const c = readImageConfig(BUSYBOX);
    assert.ok(c);
    assert.deepEqual(c.cmd, ['sh']);
    assert.deepEqual(c.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    assert.equal(readSifMetadata(BUSYBOX).deffile, 'BootStrap: docker\nFrom: busybox:1.33.1\n');
  });

  test('a sandbox directory: read from /.singularity.d; a Warren-built SIF: its labels; a missing image: SIF_NOT_FOUND', () => {
    const { dir, cleanup } = tempDir('warren-meta-');
    try {
      const env = { WARREN_HOME: join(dir, 'home') };
      const sb = join(dir, 'sandbox');
      mkdirSync(join(sb, '.singularity.d', 'env'), { recursive: true });
      mkdirSync(join(sb, 'bin'));
      writeFileSync(join(sb, '.singularity.d', 'Singularity'), 'Bootstrap: scratch\n\n%help\n  hello\n');
      writeFileSync(join(sb, '.singularity.d', 'labels.json'), JSON.stringify({ MAINTAINER: 'lab', version: '2' }));
      writeFileSync(join(sb, '.singularity.d', 'runscript'), '#!/bin/sh\necho run "$@"\n', { mode: 0o755 });
      writeFileSync(join(sb, '.singularity.d', 'runscript.help'), 'hello\n');
      writeFileSync(join(sb, '.singularity.d', 'env', '90-environment.sh'), '#!/bin/sh\nexport GREETING=hi\n');
      writeFileSync(join(sb, '.singularity.d', 'env', '01-base.sh'), '#!/bin/sh\n');
      writeFileSync(join(sb, 'bin', 'tool'), 'x');
      assert.equal(cli(['image', 'inspect', '--deffile', sb], env).stdout, 'Bootstrap: scratch\n\n%help\n  hello\n');
      assert.equal(cli(['image', 'inspect', '--labels', sb], env).stdout, 'MAINTAINER: lab\nversion: 2\n');
      assert.equal(cli(['image', 'inspect', '--helpfile', sb], env).stdout, 'hello\n');
      assert.equal(cli(['image', 'inspect', '--environment', sb], env).stdout, '=== /.singularity.d/env/01-base.sh ===\n#!/bin/sh\n=== /.singularity.d/env/90-environment.sh ===\n#!/bin/sh\nexport GREETING=hi\n');
      const noStart = cli(['image', 'inspect', '--startscript', sb], env);
      assert.equal(noStart.code, 0);
      assert.equal(noStart.stdout, '');
      assert.match(noStart.stderr, /has no startscript/);

      // Warren's own build: no Apptainer metadata, labels from its image config.
      const rootfs = join(dir, 'rootfs');
      mkdirSync(join(rootfs, 'bin'), { recursive: true });
      writeFileSync(join(rootfs, 'bin', 'x'), 'x');
      const out = join(dir, 'w.sif');
      const b = cli(['image', 'build', rootfs, '-o', out, '--label', 'team=hpc'], env);
      assert.equal(b.code, 0, b.stderr);
      assert.equal(cli(['image', 'inspect', '--labels', out], env).stdout, 'team=hpc'.replace('=', ': ') + '\n');
      const none = cli(['image', 'inspect', '--deffile', out], env);
      assert.equal(none.code, 0);
      assert.match(none.stderr, /has no definition file/);

      const missing = cli(['image', 'inspect', '--labels', join(dir, 'nope.sif')], env);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /error\[SIF_NOT_FOUND\].*does not exist/);
      assert.match(missing.stderr, /hint: /);
    } finally {
      cleanup();
    }
  });
});
