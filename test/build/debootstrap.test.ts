// One debootstrap build (--variant=minbase, slow: minutes) of Apptainer's debian example against
// the Debian archive this machine uses (/etc/apt/sources.list*), with apt-get in %post over
// the node's network. Skipped only when the archive cannot be reached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFromDefinition, debianMirror } from '../../src/build/index.js';
import { readSifMetadata } from '../../src/image/index.js';
import { tempDir } from '../helpers.js';
import { buildSkip, copyRecipe, extractSif, isRoot } from './helpers.js';

const mirror = debianMirror();
const suite = (() => {
  try {
    return /^VERSION_CODENAME=(\S+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'bookworm';
  } catch {
    return 'bookworm';
  }
})();

async function reachable(): Promise<string | false> {
  if (!mirror) return 'no Debian mirror in /etc/apt/sources.list*';
  try {
    const r = await fetch(`${mirror.replace(/\/+$/, '')}/dists/${suite}/Release`, { signal: AbortSignal.timeout(15_000) });
    await r.arrayBuffer();
    return r.ok ? false : `the Debian archive ${mirror} answers ${r.status} for dists/${suite}/Release`;
  } catch (e) {
    return `the Debian archive ${mirror} cannot be reached (${(e as Error).message})`;
  }
}

const skip = buildSkip() || (isRoot ? false : 'debootstrap needs root') || (existsSync('/usr/sbin/debootstrap') ? false : 'debootstrap is not installed (scripts/apt/build.txt; run scripts/setup.sh)');

test("debootstrap: Apptainer's debian example (minbase), apt-get in %post", { skip, timeout: 1_200_000 }, async (t) => {
  const why = await reachable();
  if (why) {
    t.skip(why);
    return;
  }
  const w = tempDir('warren-build-deb-');
  t.after(w.cleanup);
  const recipe = copyRecipe('debian/Apptainer', w.dir, 'debian.def', (s) => {
    const out = s
      .replace('OSVersion: stable', `OSVersion: ${suite}`)
      .replace('MirrorURL: http://ftp.us.debian.org/debian/', `MirrorURL: ${mirror}`)
      // A small package instead of vim (and its dependencies): same path, less to fetch.
      .replace('apt-get -y --allow-unauthenticated install vim', 'apt-get update && apt-get -y --no-install-recommends install hello && hello');
    assert.notEqual(out, s);
    return out;
  });
  const out = join(w.dir, 'debian.sif');
  let output = '';
  const r = await buildFromDefinition({ recipe, out, home: join(w.dir, 'home'), cwd: w.dir, onOutput: (c) => (output += c.toString()) });
  assert.equal(r.mode, 'root');
  assert.match(output, /Hello, world!/);
  const tree = extractSif(out, join(w.dir, 'tree'));
  assert.match(readFileSync(join(tree, 'etc/os-release'), 'utf8'), new RegExp(`VERSION_CODENAME=${suite}`));
  assert.ok(existsSync(join(tree, 'usr/bin/hello')));
  assert.ok(existsSync(join(tree, 'usr/bin/apt-get')));
  const meta = readSifMetadata(out);
  assert.equal(meta.labels!['org.label-schema.usage.singularity.deffile.bootstrap'], 'debootstrap');
  assert.match(meta.runscript!, /This is what happens when you run the container/);
});
