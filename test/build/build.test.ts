// Definition-file builds with real runc and squashfs-tools: each bootstrap (docker and oras from a
// loopback registry), multi-stage, %arguments, SCIF apps, --sandbox, --deterministic, and the
// failure paths (nothing half built left behind). Apptainer's own recipes, copied to a temp
// dir and adapted only where they need the network.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import { buildFromDefinition, type DefinitionBuildOptions } from '../../src/build/index.js';
import { readSif, readObject, readSifMetadata, DataType, pushSif, KeyStore, signSif } from '../../src/image/index.js';
import { spawn } from 'node:child_process';
import { warrenBin } from '../helpers.js';
import { tempDir } from '../helpers.js';
import { registryAvailable, startRegistry, type LoopbackRegistry } from '../image/oci/registry.js';
import { pushBusybox } from '../image/oci/fixtures.js';
import { buildSkip, copyRecipe, extractSif, testdata, warren } from './helpers.js';

const skip = buildSkip();
const regSkip = skip || (registryAvailable() ? false : 'docker-registry is not installed (scripts/apt/image.txt; run scripts/setup.sh)');

describe('definition-file builds', { skip, timeout: 600_000 }, () => {
  let t: { dir: string; cleanup: () => void };
  let home: string;
  let n = 0;
  const fresh = (name: string): string => {
    const d = join(t.dir, `${++n}-${name}`);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const build = (o: Omit<DefinitionBuildOptions, 'home'>) => buildFromDefinition({ home, cacheDir: join(home, 'cache', 'images'), ...o });
  /** The build directory is empty again (every build removes its tree). */
  const assertNoBuildDirs = () => assert.deepEqual(existsSync(join(home, 'build')) ? readdirSync(join(home, 'build')) : [], []);

  before(() => {
    t = tempDir('warren-build-');
    home = join(t.dir, 'home');
  });
  after(() => t?.cleanup());

  it("Apptainer's busybox example: a SIF with Def.FILE, inspect-metadata.json, oci-config.json and the SCIF app", async () => {
    const d = fresh('busybox');
    const recipe = copyRecipe('busybox/Apptainer', d, 'busybox.def', (s) => s + '\n%labels\n    Maintainer warren-test\n%environment\n    export WHO=warren\n%help\n    Prints its arguments.\n');
    const out = join(d, 'busybox.sif');
    const r = await warren(['image', 'build', out, recipe], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^built .*busybox\.sif/m);
    assert.match(r.err, /Hello from inside the container/);
    const img = readSif(out);
    const kinds = img.descriptors.map((x) => [x.type, x.name ?? '']);
    assert.deepEqual(kinds.slice(0, 3).map((k) => k[0]), ['Def.FILE', 'JSON.Generic', 'JSON.Generic']);
    assert.deepEqual(img.descriptors.filter((x) => x.dataType === DataType.GenericJSON).map((x) => x.name), ['inspect-metadata.json', 'oci-config.json']);
    assert.equal(readObject(img, img.descriptors.find((x) => x.dataType === DataType.Deffile)!).toString(), readFileSync(recipe, 'utf8'));
    const meta = readSifMetadata(out);
    assert.equal(meta.labels!.Maintainer, 'warren-test');
    assert.equal(meta.labels!['org.label-schema.usage.singularity.deffile.bootstrap'], 'busybox');
    assert.match(meta.runscript!, /^#!\/bin\/sh\n\n {4}echo "Running command: \$\*"/);
    assert.match(meta.environment!['/.singularity.d/env/90-environment.sh']!, /export WHO=warren/);
    assert.match(meta.helpfile!, /Prints its arguments/);
    // The CLI shows what Apptainer's inspect shows.
    const insp = await warren(['image', 'inspect', '--deffile', '--labels', '--runscript', '--environment', out]);
    assert.equal(insp.code, 0, insp.err);
    for (const s of ['==deffile==', 'BootStrap: busybox', '==labels==', 'Maintainer: warren-test', '==runscript==', 'echo "Running command', '==environment==', '=== /.singularity.d/env/90-environment.sh ===', 'export WHO=warren']) assert.ok(insp.out.includes(s), `${s} in\n${insp.out}`);
    // The same attribute keys as Apptainer's own busybox_amd64.sif (plus the ones this recipe has).
    const json = async (p: string) => JSON.parse((await warren(['image', 'inspect', '--json', '--deffile', '--labels', '--runscript', '--startscript', '--environment', p])).out) as { data: { attributes: Record<string, unknown> }; type: string };
    const ours = await json(out);
    const theirs = await json(join(testdata, 'busybox_amd64.sif'));
    assert.equal(ours.type, theirs.type);
    assert.deepEqual(Object.keys(ours.data.attributes).sort(), Object.keys(theirs.data.attributes).sort());
    // SCIF: the app's files are where Apptainer puts them.
    const tree = extractSif(out, join(d, 'tree'));
    assert.equal(readFileSync(join(tree, 'scif/apps/testapp/bin/testapp.sh'), 'utf8'), 'echo $TESTAPP\n');
    assert.equal(statSync(join(tree, 'scif/apps/testapp/bin/testapp.sh')).mode & 0o777, 0o755);
    assert.match(readFileSync(join(tree, 'scif/apps/testapp/scif/runscript'), 'utf8'), /\$TESTAPP\.sh/);
    assert.match(readFileSync(join(tree, 'scif/apps/testapp/scif/env/90-environment.sh'), 'utf8'), /TESTAPP=testapp/);
    for (const p of ['scif/data/testapp/input', 'scif/data/testapp/output', '.singularity.d/actions/run', '.singularity.d/env/95-apps.sh']) assert.ok(existsSync(join(tree, p)), p);
    assert.equal(readlinkSync(join(tree, 'singularity')), '.singularity.d/runscript');
    assert.ok(existsSync(join(tree, 'bin/busybox')) && lstatSync(join(tree, 'bin/sh')).isSymbolicLink());
    // The build's placeholders for the node's resolv.conf/hosts are files of the image (empty), not left-over mounts.
    assert.equal(readFileSync(join(tree, 'etc/resolv.conf'), 'utf8'), '');
    assertNoBuildDirs();
  });

  it('scratch: %setup installs busybox (adapted from the example: a local copy instead of curl), then %post runs', async () => {
    const d = fresh('scratch');
    const recipe = copyRecipe('scratch/Apptainer.busybox', d, 'scratch.def', (s) => {
      const out = s.replace(/curl -o ("\$\{APPTAINER_ROOTFS\}\/bin\/busybox") "\$\{busybox_url\}"/, 'cp /bin/busybox $1');
      assert.notEqual(out, s);
      return out + '\n%post\n    echo "post sees $(cat /etc/group)" > /post-ran\n';
    });
    const out = join(d, 'scratch.sif');
    await build({ recipe, out, cwd: d });
    const tree = extractSif(out, join(d, 'tree'));
    assert.equal(readFileSync(join(tree, 'post-ran'), 'utf8'), 'post sees root:x:0:\n');
    assert.equal(readFileSync(join(tree, 'etc/passwd'), 'utf8'), 'root:!:0:0:root:/root:/bin/sh\n');
    assert.ok(existsSync(join(tree, 'bin/ls')));
  });

  it('scratch without a shell: %post is refused with BUILD_NO_SHELL, nothing left', async () => {
    const d = fresh('noshell');
    writeFileSync(join(d, 'r.def'), 'Bootstrap: scratch\n\n%post\n    echo hi\n');
    await assert.rejects(build({ recipe: join(d, 'r.def'), out: join(d, 'x.sif'), cwd: d }), (e: WarrenError) => e.code === 'BUILD_NO_SHELL' && e.message.startsWith(`${join(d, 'r.def')}:3:1: `) && /\/bin\/sh/.test(e.message));
    assert.deepEqual(readdirSync(d).sort(), ['r.def']);
    writeFileSync(join(d, 't.def'), 'Bootstrap: scratch\n\n%test\n    true\n');
    await assert.rejects(build({ recipe: join(d, 't.def'), out: join(d, 'x.sif'), cwd: d }), (e: WarrenError) => e.code === 'BUILD_NO_SHELL' && /t\.def:3:1: %test/.test(e.message));
    // An empty scratch image builds: only the metadata and the system directories.
    writeFileSync(join(d, 'empty.def'), 'Bootstrap: scratch\n');
    await build({ recipe: join(d, 'empty.def'), out: join(d, 'empty.sif'), cwd: d });
    const tree = extractSif(join(d, 'empty.sif'), join(d, 'empty-tree'));
    assert.deepEqual(readdirSync(tree).filter((n) => !n.startsWith('.')).sort(), ['dev', 'environment', 'etc', 'home', 'mnt', 'opt', 'proc', 'root', 'singularity', 'srv', 'sys', 'tmp', 'var']);
    assertNoBuildDirs();
  });

  it('localimage: from a SIF and from a sandbox directory; --sandbox writes a directory that inspects alike', async () => {
    const d = fresh('local');
    const base = copyRecipe('busybox/Apptainer', d, 'base.def');
    await build({ recipe: base, out: join(d, 'base.sif'), cwd: d });
    await build({ recipe: base, out: join(d, 'base-sandbox'), sandbox: true, cwd: d });
    assert.ok(statSync(join(d, 'base-sandbox')).isDirectory());
    assert.ok(existsSync(join(d, 'base-sandbox/bin/busybox')));
    const sb = await warren(['image', 'inspect', '--deffile', '--runscript', join(d, 'base-sandbox')]);
    assert.equal(sb.code, 0, sb.err);
    assert.match(sb.out, /BootStrap: busybox/);
    assert.match(sb.out, /echo "Running command/);
    for (const [from, name] of [['base.sif', 'from-sif'], ['base-sandbox', 'from-dir']] as const) {
      writeFileSync(join(d, `${name}.def`), `Bootstrap: localimage\nFrom: ${from}\n\n%post\n    echo ${name} > /which\n\n%labels\n    Kind ${name}\n`);
      const out = join(d, `${name}.sif`);
      await build({ recipe: join(d, `${name}.def`), out, cwd: d });
      const tree = extractSif(out, join(d, `${name}-tree`));
      assert.equal(readFileSync(join(tree, 'which'), 'utf8'), `${name}\n`);
      // The base's app is still there; the base's runscript stays (the recipe has none).
      assert.ok(existsSync(join(tree, 'scif/apps/testapp/bin/testapp.sh')), name);
      const meta = readSifMetadata(out);
      assert.equal(meta.labels!.Kind, name);
      assert.match(meta.runscript!, /Running command/);
      assert.equal(meta.labels!['org.label-schema.usage.singularity.deffile.bootstrap'], 'localimage');
    }
    writeFileSync(join(d, 'missing.def'), 'Bootstrap: localimage\nFrom: nope.sif\n');
    await assert.rejects(build({ recipe: join(d, 'missing.def'), out: join(d, 'm.sif'), cwd: d }), (e: WarrenError) => e.code === 'BUILD_BOOTSTRAP_FAILED' && /:2:7: base image .*nope\.sif does not exist/.test(e.message));
  });

  it('%files: host files (relative to the working directory, globs, into directories); a link in the image cannot lead a copy out of the tree', async () => {
    const d = fresh('files');
    mkdirSync(join(d, 'sandbox/var'), { recursive: true });
    mkdirSync(join(d, 'sandbox/bin'), { recursive: true });
    writeFileSync(join(d, 'sandbox/bin/busybox'), readFileSync('/bin/busybox'), { mode: 0o755 });
    symlinkSync('busybox', join(d, 'sandbox/bin/sh'));
    // As in Apptainer's e2e image: /var/etc -> /etc (absolute: inside the image it means the image's /etc).
    symlinkSync('/etc', join(d, 'sandbox/var/etc'));
    mkdirSync(join(d, 'data'));
    writeFileSync(join(d, 'data/a.txt'), 'A\n');
    writeFileSync(join(d, 'data/b.txt'), 'B\n');
    writeFileSync(join(d, 'single.txt'), 'S\n');
    const marker = `warren-build-escape-${process.pid}`;
    // Links at destinations: replaced, never written through (cp would follow them to the host's files).
    const hostFile = join(t.dir, `host-file-${process.pid}`);
    writeFileSync(hostFile, 'host\n');
    mkdirSync(join(d, 'sandbox/etc'));
    symlinkSync(hostFile, join(d, 'sandbox/etc/link-out'));
    symlinkSync(hostFile, join(d, 'sandbox/etc/a.txt'));
    writeFileSync(
      join(d, 'r.def'),
      `Bootstrap: localimage\nFrom: sandbox\n\n%files\n    single.txt\n    data/*.txt /opt/data/\n    single.txt /var/etc/${marker}\n    data /srv/data\n    single.txt /etc/link-out\n    data/a.txt /var/etc/\n`,
    );
    const out = join(d, 'r.sif');
    await build({ recipe: join(d, 'r.def'), out, cwd: d });
    const tree = extractSif(out, join(d, 'tree'));
    assert.equal(readFileSync(join(tree, 'single.txt'), 'utf8'), 'S\n');
    assert.deepEqual(readdirSync(join(tree, 'opt/data')).sort(), ['a.txt', 'b.txt']);
    assert.equal(readFileSync(join(tree, 'etc', marker), 'utf8'), 'S\n');
    assert.equal(existsSync(join('/etc', marker)), false, 'copied onto the host /etc through the link');
    assert.equal(readFileSync(join(tree, 'srv/data/b.txt'), 'utf8'), 'B\n');
    assert.equal(readFileSync(hostFile, 'utf8'), 'host\n', 'a file of the host was written through a link of the image');
    assert.equal(lstatSync(join(tree, 'etc/link-out')).isFile(), true);
    assert.equal(readFileSync(join(tree, 'etc/link-out'), 'utf8'), 'S\n');
    assert.equal(readFileSync(join(tree, 'etc/a.txt'), 'utf8'), 'A\n');
  });

  it('a base whose /.singularity.d, /scif and /etc are links out of the tree: Warren writes inside the tree, never on the host', async () => {
    const d = fresh('hostile-base');
    // Not under /tmp: inside a build step /tmp is a tmpfs, so links into it lead nowhere lasting.
    const hostDir = mkdtempSync('/var/tmp/warren-build-host-');
    const cleanupHost = () => rmSync(hostDir, { recursive: true, force: true });
    after(cleanupHost);
    writeFileSync(join(hostDir, 'runscript'), 'host secret\n');
    const sb = join(d, 'sandbox');
    mkdirSync(join(sb, 'bin'), { recursive: true });
    writeFileSync(join(sb, 'bin/busybox'), readFileSync('/bin/busybox'), { mode: 0o755 });
    symlinkSync('busybox', join(sb, 'bin/sh'));
    for (const l of ['.singularity.d', 'scif', 'etc']) symlinkSync(hostDir, join(sb, l));
    writeFileSync(join(d, 'r.def'), 'Bootstrap: localimage\nFrom: sandbox\n%appinstall a\n    touch made\n%apprun a\n    echo a\n%labels\n    K V\n');
    const out = join(d, 'r.sif');
    await build({ recipe: join(d, 'r.def'), out, cwd: d, notest: true });
    assert.deepEqual(readdirSync(hostDir), ['runscript'], 'Warren wrote into the host directory a link of the image points at');
    assert.equal(readFileSync(join(hostDir, 'runscript'), 'utf8'), 'host secret\n');
    const meta = readSifMetadata(out);
    assert.equal(meta.labels!.K, 'V');
    assert.doesNotMatch(JSON.stringify(meta), /host secret/, 'a host file was read into the metadata');
    const tree = extractSif(out, join(d, 'tree'));
    // Inside the image the links lead to <hostDir> as a path of the image: that is where things went.
    assert.ok(existsSync(join(tree, hostDir, 'labels.json')));
    assert.ok(existsSync(join(tree, hostDir, 'apps/a/made')));
    cleanupHost();
  });

  it('%files with a missing source: an error at its line, nothing left behind', async () => {
    const d = fresh('files-missing');
    writeFileSync(join(d, 'r.def'), 'Bootstrap: busybox\n\n%files\n    there.txt\n    not-there.txt /x\n');
    writeFileSync(join(d, 'there.txt'), 'x');
    await assert.rejects(build({ recipe: join(d, 'r.def'), out: join(d, 'x.sif'), cwd: d }), (e: WarrenError) => e.code === 'BUILD_FILES_SOURCE_MISSING' && e.message.startsWith(`${join(d, 'r.def')}:5:5: `) && /not-there\.txt/.test(e.message) && !!e.hint);
    assert.deepEqual(readdirSync(d).sort(), ['r.def', 'there.txt']);
    assertNoBuildDirs();
  });

  it('a failing %post: its exit status and last lines, no image, no build directory', async () => {
    const d = fresh('post-fails');
    writeFileSync(join(d, 'r.def'), 'Bootstrap: busybox\n\n%post\n    echo first line\n    echo second line\n    echo to stderr >&2\n    exit 7\n    echo never\n');
    const out = join(d, 'x.sif');
    const r = await warren(['image', 'build', out, join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /error\[BUILD_POST_FAILED\]: .*r\.def:3:1: %post of stage 1\/1 failed: it exited with status 7; its last output lines:/);
    assert.match(r.err, /second line\n(.|\n)*to stderr/);
    assert.doesNotMatch(r.err, /never/);
    assert.match(r.err, /hint: /);
    assert.deepEqual(readdirSync(d), ['r.def']);
    assertNoBuildDirs();
    // Also with --force over an existing image: the old one stays as it was.
    writeFileSync(out, 'old image');
    const again = await warren(['image', 'build', '--force', out, join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(again.code, 1);
    assert.equal(readFileSync(out, 'utf8'), 'old image');
    assert.deepEqual(readdirSync(d).sort(), ['r.def', 'x.sif']);
  });

  it('%setup and %test failures; --notest skips %test', async () => {
    const d = fresh('setup-test');
    writeFileSync(join(d, 'setup.def'), 'Bootstrap: busybox\n%setup\n    echo setting up\n    false\n');
    await assert.rejects(build({ recipe: join(d, 'setup.def'), out: join(d, 's.sif'), cwd: d }), (e: WarrenError) => e.code === 'BUILD_SETUP_FAILED' && /setup\.def:2:1: %setup failed: it exited with status 1/.test(e.message) && /setting up/.test(e.message));
    writeFileSync(join(d, 'test.def'), 'Bootstrap: busybox\n%test\n    echo testing\n    test -e /does-not-exist\n');
    await assert.rejects(build({ recipe: join(d, 'test.def'), out: join(d, 't.sif'), cwd: d }), (e: WarrenError) => e.code === 'BUILD_TEST_FAILED' && /test\.def:2:1: %test failed: it exited with status 1/.test(e.message) && /testing/.test(e.message) && /--notest/.test(e.hint ?? ''));
    assert.deepEqual(readdirSync(d).sort(), ['setup.def', 'test.def']);
    const r = await build({ recipe: join(d, 'test.def'), out: join(d, 't.sif'), cwd: d, notest: true });
    assert.equal(r.kind, 'sif');
    assert.match(readSifMetadata(join(d, 't.sif')).test!, /test -e \/does-not-exist/);
    assertNoBuildDirs();
  });

  it('an existing OUT is refused without --force and replaced with it', async () => {
    const d = fresh('force');
    writeFileSync(join(d, 'r.def'), 'Bootstrap: busybox\n%runscript\n    echo v2\n');
    writeFileSync(join(d, 'x.sif'), 'old');
    const r = await warren(['image', 'build', join(d, 'x.sif'), join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(r.code, 2);
    assert.match(r.err, /error\[BUILD_OUTPUT_EXISTS\]: .*x\.sif already exists/);
    assert.match(r.err, /--force/);
    assert.equal(readFileSync(join(d, 'x.sif'), 'utf8'), 'old');
    const f = await warren(['image', 'build', '--force', join(d, 'x.sif'), join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(f.code, 0, f.err);
    assert.match(readSifMetadata(join(d, 'x.sif')).runscript!, /echo v2/);
    // --force never removes a directory that is not an image sandbox.
    mkdirSync(join(d, 'precious'));
    writeFileSync(join(d, 'precious/keep.txt'), 'keep');
    const dir = await warren(['image', 'build', '--force', '--sandbox', join(d, 'precious'), join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(dir.code, 2);
    assert.match(dir.err, /BUILD_OUTPUT_INVALID.*not an image sandbox/);
    assert.equal(readFileSync(join(d, 'precious/keep.txt'), 'utf8'), 'keep');
    // A sandbox is replaced by a new sandbox.
    assert.equal((await warren(['image', 'build', '--sandbox', join(d, 'sb'), join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } })).code, 0);
    writeFileSync(join(d, 'sb/stale'), 'x');
    const sb = await warren(['image', 'build', '--force', '--sandbox', join(d, 'sb'), join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(sb.code, 0, sb.err);
    assert.equal(existsSync(join(d, 'sb/stale')), false);
    assert.ok(existsSync(join(d, 'sb/.singularity.d/runscript')));
    const nodir = await warren(['image', 'build', join(d, 'no/such/dir/x.sif'), join(d, 'r.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(nodir.code, 2);
    assert.match(nodir.err, /BUILD_OUTPUT_INVALID/);
    const nodef = await warren(['image', 'build', join(d, 'y.sif'), join(d, 'nope.def')], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(nodef.code, 2);
    assert.match(nodef.err, /error\[BUILD_DEF_NOT_FOUND\]: definition file .*nope\.def does not exist/);
    await assert.rejects(build({ recipe: '/dev/null', out: join(d, 'z.sif') }), (e: WarrenError) => e.code === 'BUILD_DEF_NOT_FOUND' && /is not a regular file/.test(e.message));
    await assert.rejects(build({ recipe: join(d, 'r.def'), out: join(d, 'z.sif'), buildArgFiles: ['/dev/zero'] }), (e: WarrenError) => e.code === 'BUILD_ARG_INVALID' && /dev\/zero/.test(e.message));
    await assert.rejects(build({ recipe: join(d, 'r.def'), out: join(d, 'r.def') }), (e: WarrenError) => e.code === 'BUILD_OUTPUT_EXISTS' || e.code === 'BUILD_OUTPUT_INVALID');
    assert.match(readFileSync(join(d, 'r.def'), 'utf8'), /echo v2/);
  });

  it('--deterministic: the same recipe and base give byte-identical images', async () => {
    const d = fresh('deterministic');
    const recipe = copyRecipe('busybox/Apptainer', d, 'r.def', (s) => s + '\n%files\n    data.txt /data.txt\n');
    writeFileSync(join(d, 'data.txt'), 'same\n');
    await build({ recipe, out: join(d, 'a.sif'), cwd: d, deterministic: true });
    await new Promise((r) => setTimeout(r, 1100)); // a second later: any timestamp would differ
    await build({ recipe, out: join(d, 'b.sif'), cwd: d, deterministic: true });
    assert.ok(readFileSync(join(d, 'a.sif')).equals(readFileSync(join(d, 'b.sif'))), 'two deterministic builds differ');
    await build({ recipe, out: join(d, 'c.sif'), cwd: d });
    assert.equal(readFileSync(join(d, 'a.sif')).equals(readFileSync(join(d, 'c.sif'))), false);
    assert.equal(readSifMetadata(join(d, 'a.sif')).labels!['org.label-schema.build-date'], undefined);
    // Ownership is kept (not squashed to root by the deterministic options): a file %post gives to uid 1234.
    writeFileSync(join(d, 'own.def'), 'Bootstrap: busybox\n%post\n    touch /owned\n    chown 1234:5678 /owned\n');
    if (process.getuid?.() === 0) {
      await build({ recipe: join(d, 'own.def'), out: join(d, 'own.sif'), cwd: d, deterministic: true });
      const tree = extractSif(join(d, 'own.sif'), join(d, 'own-tree'));
      assert.equal(statSync(join(tree, 'owned')).uid, 1234);
      assert.equal(statSync(join(tree, 'owned')).gid, 5678);
    }
  });

  it('%arguments: defaults, --build-arg, --build-arg-file; an unset one fails with its position', async () => {
    const d = fresh('args');
    writeFileSync(join(d, 'r.def'), 'Bootstrap: busybox\n\n%arguments\n    GREETING=hello\n    WHO=world\n\n%post\n    echo "{{ GREETING }} {{ WHO }} {{ EXTRA }}" > /greeting\n\n%labels\n    Greeting {{GREETING}}\n');
    writeFileSync(join(d, 'args.txt'), '# build args\nWHO=file\nEXTRA=from-file\n');
    const r = await warren(['image', 'build', '--build-arg', 'GREETING=hi', '--build-arg-file', 'args.txt', join(d, 'r.sif'), 'r.def'], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(r.code, 0, r.err);
    const tree = extractSif(join(d, 'r.sif'), join(d, 'tree'));
    assert.equal(readFileSync(join(tree, 'greeting'), 'utf8'), 'hi file from-file\n');
    assert.equal(readSifMetadata(join(d, 'r.sif')).labels!.Greeting, 'hi');
    // The image's definition file is the one that was built (arguments substituted).
    assert.match(readSifMetadata(join(d, 'r.sif')).deffile!, /echo "hi file from-file" > \/greeting/);
    const missing = await warren(['image', 'build', join(d, 'm.sif'), 'r.def'], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(missing.code, 2);
    assert.match(missing.err, /error\[BUILD_ARG_MISSING\]: .*r\.def:8:36: build argument EXTRA is used but not set/);
    assert.match(missing.err, /hint: give it with --build-arg EXTRA=VALUE/);
    const bad = await warren(['image', 'build', '--build-arg', 'oops', join(d, 'm.sif'), 'r.def'], { cwd: d, env: { WARREN_HOME: home } });
    assert.equal(bad.code, 2);
    assert.match(bad.err, /BUILD_ARG_INVALID/);
    assert.equal(existsSync(join(d, 'm.sif')), false);
  });

  it('SCIF apps of Apptainer\'s e2e recipe (adapted: a busybox base from a local image, no apk)', async () => {
    const d = fresh('e2e');
    const base = copyRecipe('busybox/Apptainer', d, 'base.def');
    await build({ recipe: base, out: join(d, 'base.sif'), cwd: d, notest: true });
    const recipe = copyRecipe(join(testdata, 'e2e-testdata.def'), d, 'e2e.def', (s) => {
      const out = s.replace(/^bootstrap: oras\nfrom: .*$/m, 'bootstrap: localimage\nfrom: base.sif').replace(/^ {4}apk (update|add nmap-ncat)$/gm, '    # (network) apk $1');
      assert.notEqual(out, s);
      return out;
    });
    const out = join(d, 'e2e.sif');
    await build({ recipe, out, cwd: d });
    const tree = extractSif(out, join(d, 'tree'));
    assert.equal(lstatSync(join(tree, 'dev/null')).isCharacterDevice(), process.getuid?.() === 0);
    assert.equal(readlinkSync(join(tree, 'var/etc')), '/etc');
    assert.equal(readlinkSync(join(tree, 'etc/relative-slink')), '../usr/share/zoneinfo/Etc/UTC');
    for (const app of ['foo', 'bar', 'testapp']) assert.ok(statSync(join(tree, 'scif/apps', app, 'scif')).isDirectory(), app);
    assert.ok(existsSync(join(tree, 'scif/apps/foo/filefoo.exec')), '%appinstall runs in the app root');
    assert.ok(existsSync(join(tree, 'scif/apps/bar/filebar.exec')));
    assert.equal(readFileSync(join(tree, 'scif/apps/foo/scif/runscript.help'), 'utf8'), 'This is the help for foo!\n');
    assert.deepEqual(JSON.parse(readFileSync(join(tree, 'scif/apps/foo/scif/labels.json'), 'utf8')), { HELLOTHISIS: 'foo', SCIF_APP_NAME: 'foo' });
    assert.match(readFileSync(join(tree, 'scif/apps/foo/scif/startscript'), 'utf8'), /STARTING FOO/);
    assert.match(readFileSync(join(tree, '.singularity.d/env/94-appsbase.sh'), 'utf8'), /SCIF_APPROOT_foo=\/scif\/apps\/foo/);
    const meta = readSifMetadata(out);
    assert.equal(meta.labels!.maintainer, '"Apptainer Team <tsc@apptainer.org>"');
    assert.match(meta.startscript!, /nc -l -k -p \$1 -e \/bin\/cat/);
    assert.match(meta.environment!['/.singularity.d/env/90-environment.sh']!, /AVENGERS=assemble/);
    assert.match(meta.helpfile!, /BAD_GUY=Thanos/);
  });

  it('SCIF apps: %appfiles into the app root, %appenv, %apptest, %applabels; runnable through the action scripts', async () => {
    const d = fresh('apps');
    writeFileSync(join(d, 'tool.sh'), '#!/bin/sh\necho "tool of $SCIF_APPNAME: $GREETING"\n');
    writeFileSync(
      join(d, 'r.def'),
      [
        'Bootstrap: busybox',
        '%appfiles hello',
        '    tool.sh bin/tool.sh',
        '%appinstall hello',
        '    chmod 755 bin/tool.sh',
        '    pwd > installed-in',
        '%appenv hello',
        '    GREETING=hi',
        '    export GREETING',
        '%apprun hello',
        '    exec tool.sh "$@"',
        '%apptest hello',
        '    test -x "$SCIF_APPROOT/bin/tool.sh"',
        '%applabels hello',
        '    Version 1.2',
        '%test',
        '    # run the app the way `run --app hello` does: through the action script',
        '    out=$(APPTAINER_APPNAME=hello /.singularity.d/actions/run)',
        '    test "$out" = "tool of hello: hi"',
        '    APPTAINER_APPNAME=hello /.singularity.d/actions/test',
        '',
      ].join('\n'),
    );
    const out = join(d, 'apps.sif');
    await build({ recipe: join(d, 'r.def'), out, cwd: d });
    const tree = extractSif(out, join(d, 'tree'));
    assert.equal(readFileSync(join(tree, 'scif/apps/hello/installed-in'), 'utf8'), '/scif/apps/hello\n');
    assert.equal(statSync(join(tree, 'scif/apps/hello/bin/tool.sh')).mode & 0o777, 0o755);
    assert.match(readFileSync(join(tree, 'scif/apps/hello/scif/test'), 'utf8'), /SCIF_APPROOT/);
    assert.deepEqual(JSON.parse(readFileSync(join(tree, 'scif/apps/hello/scif/labels.json'), 'utf8')), { SCIF_APP_NAME: 'hello', Version: '1.2' });
  });

  it('Fingerprints: the base SIF must carry a valid signature of each key named', async () => {
    const d = fresh('fingerprints');
    const base = copyRecipe('busybox/Apptainer', d, 'base.def');
    await build({ recipe: base, out: join(d, 'base.sif'), cwd: d, notest: true });
    const store = new KeyStore(join(home, 'keys'));
    const k = store.generate({ type: 'ed25519', name: 'builder', trusted: true });
    const other = store.generate({ type: 'ed25519', name: 'other', trusted: true });
    await signSif(join(d, 'base.sif'), [await store.load(k, true)], { image: 'base.sif' });
    writeFileSync(join(d, 'ok.def'), `Bootstrap: localimage\nFrom: base.sif\nFingerprints: ${k.fingerprint}\n`);
    await build({ recipe: join(d, 'ok.def'), out: join(d, 'ok.sif'), cwd: d });
    writeFileSync(join(d, 'bad.def'), `Bootstrap: localimage\nFrom: base.sif\nFingerprints: ${k.fingerprint}, ${other.fingerprint}\n`);
    await assert.rejects(build({ recipe: join(d, 'bad.def'), out: join(d, 'bad.sif'), cwd: d }), (e: WarrenError) => e.code === 'BUILD_FINGERPRINT_MISMATCH' && /bad\.def:3:15: /.test(e.message) && e.message.includes(other.fingerprint) && !e.message.includes(`${k.fingerprint},`));
    assert.equal(existsSync(join(d, 'bad.sif')), false);
  });

  it('SIGTERM during %post: the step is stopped, the build directory and partial output removed', async () => {
    const d = fresh('signal');
    writeFileSync(join(d, 'r.def'), 'Bootstrap: busybox\n%post\n    echo started\n    sleep 60\n');
    const p = spawn(process.execPath, [warrenBin, 'image', 'build', join(d, 'x.sif'), join(d, 'r.def')], { cwd: d, env: { ...process.env, WARREN_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const exited = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    after(() => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      const t0 = setTimeout(() => reject(new Error(`no %post output: ${err}`)), 60_000);
      p.stderr.on('data', (c: Buffer) => {
        err += c.toString();
        // the shell's trace (stderr) and echo's output (stdout) reach us through two pipes and may
        // interleave mid-line ('+ started\nsleep 60'): wait for the command's name only
        if (/sleep 60\n/.test(err)) {
          clearTimeout(t0);
          resolve();
        }
      });
    });
    p.kill('SIGTERM');
    assert.equal(await exited, 143, err);
    assert.match(err, /SIGTERM: stopped/);
    assert.deepEqual(readdirSync(d), ['r.def']);
    assertNoBuildDirs();
  });

  describe('from a loopback registry', { skip: regSkip }, () => {
    let reg: LoopbackRegistry;
    before(async () => {
      reg = await startRegistry();
      await pushBusybox(`docker://${reg.host}/build/busybox:1`);
    });
    after(async () => {
      await reg?.stop();
    });

    it("docker: Apptainer's docker example with its base from the registry; the base's env and config are kept", async () => {
      const d = fresh('docker');
      const recipe = copyRecipe('docker/Apptainer', d, 'docker.def', (s) => s.replace('From: busybox:latest', `From: ${reg.host}/build/busybox:1`));
      const out = join(d, 'docker.sif');
      const r = await warren(['image', 'build', out, recipe], { cwd: d, env: { WARREN_HOME: home } });
      assert.equal(r.code, 0, r.err);
      const meta = readSifMetadata(out);
      assert.match(meta.environment!['/.singularity.d/env/10-docker2singularity.sh']!, /export WARREN_TEST="\$\{WARREN_TEST:-1\}"/);
      assert.match(meta.runscript!, /This is what happens when you run the container/);
      assert.equal(meta.labels!['org.warren.test'], 'busybox');
      assert.equal(meta.labels!['org.label-schema.usage.singularity.deffile.from'], `${reg.host}/build/busybox:1`);
      const img = readSif(out);
      const oci = JSON.parse(readObject(img, img.descriptors.find((x) => x.name === 'oci-config.json')!).toString()) as Record<string, unknown>;
      assert.deepEqual(oci.Env, ['PATH=/usr/bin:/bin', 'WARREN_TEST=1']);
      assert.deepEqual(oci.Entrypoint, ['/bin/sh', '-c']);
      const tree = extractSif(out, join(d, 'tree'));
      assert.equal(readFileSync(join(tree, 'etc/motd'), 'utf8'), 'updated\n'); // both layers applied
    });

    it('docker without a runscript: one made from the base ENTRYPOINT and CMD', async () => {
      const d = fresh('docker-norun');
      writeFileSync(join(d, 'r.def'), `Bootstrap: docker\nFrom: ${reg.host}/build/busybox:1\n`);
      await build({ recipe: join(d, 'r.def'), out: join(d, 'r.sif'), cwd: d });
      const rs = readSifMetadata(join(d, 'r.sif')).runscript!;
      assert.match(rs, /exec \/bin\/sh -c "\$@"/);
      assert.match(rs, /exec \/bin\/sh -c 'echo hello'/);
    });

    it('oras: a SIF from the registry; multi-stage (adapted from the example) with %files from the first stage', async () => {
      const d = fresh('multistage');
      const base = copyRecipe('busybox/Apptainer', d, 'base.def');
      await build({ recipe: base, out: join(d, 'base.sif'), cwd: d, notest: true });
      await pushSif(`oras://${reg.host}/build/base-sif:1`, join(d, 'base.sif'));
      const recipe = copyRecipe('multistage/Apptainer', d, 'multi.def', (s) => {
        const out = s
          .replace('From: golang:1.12.3-alpine3.9', `From: ${reg.host}/build/busybox:1`)
          .replace('From: ghcr.io/apptainer/alpine:3.15.0', `From: ${reg.host}/build/base-sif:1`)
          // No Go compiler in the base: the "build" writes a script instead of compiling hello.go.
          .replace('go build -o hello hello.go', 'printf "#!/bin/sh\\necho Hello World!\\n" > hello && chmod 755 hello');
        assert.notEqual(out, s);
        return out;
      });
      const out = join(d, 'multi.sif');
      const r = await warren(['image', 'build', out, recipe], { cwd: d, env: { WARREN_HOME: home } });
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /stage 1\/2 \(one\): bootstrap docker/);
      assert.match(r.err, /stage 2\/2 \(two\): bootstrap oras/);
      const tree = extractSif(out, join(d, 'tree'));
      assert.equal(readFileSync(join(tree, 'bin/hello'), 'utf8'), '#!/bin/sh\necho Hello World!\n');
      assert.equal(existsSync(join(tree, 'root/hello.go')), false, 'the first stage is not in the image');
      assert.ok(existsSync(join(tree, 'scif/apps/testapp')), 'the oras base (the SIF) is');
      assert.equal(readSifMetadata(out).runscript!.trim().split('\n').pop()!.trim(), 'hello');
      assertNoBuildDirs();
    });
  });
});

describe('warren image build: argument forms', { skip }, () => {
  it('SOURCE -o OUT still builds from a directory; a definition file without an output is a usage error', async () => {
    const t = tempDir('warren-build-cli-');
    try {
      mkdirSync(join(t.dir, 'root/bin'), { recursive: true });
      writeFileSync(join(t.dir, 'root/bin/x'), 'x');
      const r = await warren(['image', 'build', join(t.dir, 'root'), '-o', join(t.dir, 'a.sif')], { env: { WARREN_HOME: join(t.dir, 'h') } });
      assert.equal(r.code, 0, r.err);
      assert.ok(readSif(join(t.dir, 'a.sif')).descriptors.some((x) => x.name === 'warren-image-config.json'));
      writeFileSync(join(t.dir, 'Apptainer'), '# a recipe without .def\nBootstrap: busybox\n%post\n    touch /x\n');
      const noOut = await warren(['image', 'build', join(t.dir, 'Apptainer')], { env: { WARREN_HOME: join(t.dir, 'h') } });
      assert.equal(noOut.code, 2);
      assert.match(noOut.err, /error\[SIF_USAGE\]: .*Apptainer is a definition file/);
      // Detected by its Bootstrap: header (no .def suffix), in Apptainer's order, and in the -o form.
      const a = await warren(['image', 'build', join(t.dir, 'b.sif'), join(t.dir, 'Apptainer')], { env: { WARREN_HOME: join(t.dir, 'h') } });
      assert.equal(a.code, 0, a.err);
      const o = await warren(['image', 'build', join(t.dir, 'Apptainer'), '-o', join(t.dir, 'c.sif')], { env: { WARREN_HOME: join(t.dir, 'h') } });
      assert.equal(o.code, 0, o.err);
      const notDef = await warren(['image', 'build', join(t.dir, 'd.sif'), join(t.dir, 'root/bin/x')], { env: { WARREN_HOME: join(t.dir, 'h') } });
      assert.equal(notDef.code, 2);
      assert.match(notDef.err, /is not a definition file/);
      const mixed = await warren(['image', 'build', '--env', 'A=1', join(t.dir, 'e.sif'), join(t.dir, 'Apptainer')], { env: { WARREN_HOME: join(t.dir, 'h') } });
      assert.equal(mixed.code, 2);
      assert.match(mixed.err, /--env is not used by definition-file builds/);
      const sandboxNoDef = await warren(['image', 'build', '--sandbox', join(t.dir, 'root'), '-o', join(t.dir, 'f.sif')], { env: { WARREN_HOME: join(t.dir, 'h') } });
      assert.equal(sandboxNoDef.code, 2);
      assert.match(sandboxNoDef.err, /--sandbox is for definition-file builds/);
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});
