// Encrypted SIFs that run: a workflow job names an encrypted image and `image.decryptionSecret`;
// the partition is decrypted into a private tmpfs (root) or /dev/shm (another user), mounted from
// there, and everything is gone after the job, also when it is killed or Warren dies. Real runc,
// real mounts, real squashfs-tools; the image's /marker holds a random word so that a plaintext
// copy of THIS image can be looked for anywhere.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { rmdirSync, chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot, tempDir, warrenBin } from '../../helpers.js';
import { loadKeyFile, type PemKey } from '../../../src/image/keys/index.js';
import { createSif, DataType, FsType, PartType, archCode, partitionExtra, encryptSif, openEncryptedSif, readSif, signSif, sweepDecryptScratch, findPrimaryPartition, checkDecryptionKey } from '../../../src/image/sif/index.js';
import { createContainerRuntime } from '../../../src/runtime/container/index.js';
import { sweepStale } from '../../../src/runtime/container/sweep.js';
import { findExecutable, findSquashfsTools } from '../../../src/runtime/container/rootfs.js';
import { detectCgroups } from '../../../src/runtime/container/cgroups.js';
import { ED_PRIVATE, ED_PUBLIC, makeSif, markerSquashfs, partition, warrenIn } from './trust-fixtures.js';
import { key } from './util.js';

const isRoot = process.getuid?.() === 0;
const PASS = `pass-${randomBytes(8).toString('hex')}`;
const WORD = `word${randomBytes(6).toString('hex')}`; // the /marker of the image

/** tmpfs mounts Warren made for decrypted images (source "warren-crypt"). */
function cryptMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => / - tmpfs warren-crypt /.test(l))
    .map((l) => l.split(' ')[4]!);
}

/** Files under `dir` that are a plaintext squashfs ('hsqs' at offset 0), or the image's /marker extracted. */
function plaintextUnder(dir: string, opts: { anySquashfs: boolean; plainDigest: string; plainSize: number }): string[] {
  const found: string[] = [];
  const walk = (d: string, depth: number): void => {
    if (depth > 24) return;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        walk(p, depth + 1);
        continue;
      }
      if (!st.isFile() || st.size < 4) continue;
      let head = Buffer.alloc(0);
      try {
        const fd = openSync(p, 'r');
        try {
          head = Buffer.alloc(Math.min(st.size, 64));
          readSync(fd, head, 0, head.length, 0);
        } finally {
          closeSync(fd);
        }
      } catch {
        continue;
      }
      if (head.subarray(0, 4).toString('latin1') === 'hsqs') {
        if (opts.anySquashfs) found.push(p);
        else if (st.size === opts.plainSize && createHash('sha256').update(readFileSync(p)).digest('hex') === opts.plainDigest) found.push(p);
      } else if (n === 'marker' && head.toString('latin1').includes(WORD)) found.push(p); // an extracted /marker
    }
  };
  walk(dir, 0);
  return found;
}

describe('encrypted SIFs run from memory', { skip: isRoot ? false : 'needs root (runc, loop and tmpfs mounts)' }, () => {
  const t = tempDir('warren-encrun-');
  const home = join(t.dir, 'home');
  const warren = warrenIn(home);
  let rsaEnc = ''; // encrypted to the reference RSA key
  let passEnc = ''; // encrypted with PASS
  let signedEnc = ''; // rsaEnc signed with the Ed25519 test key
  let plainDigest = '';
  let plainSize = 0;
  let rsaPrivate = '';
  let n = 0;

  before(async () => {
    mkdirSync(join(home, 'secrets'), { recursive: true });
    const src = join(t.dir, 'src');
    mkdirSync(src);
    const sqfs = markerSquashfs(src, WORD);
    const plain = await makeSif(join(src, 'plain.sif'), [partition(sqfs, 1)], false);
    const bytes = readFileSync(sqfs);
    plainDigest = createHash('sha256').update(bytes).digest('hex');
    plainSize = bytes.length;
    rsaEnc = join(t.dir, 'rsa.sif');
    passEnc = join(t.dir, 'pass.sif');
    signedEnc = join(t.dir, 'signed.sif');
    await encryptSif(plain, rsaEnc, { key: (await loadKeyFile(key('rsa-public.pem'))) as PemKey });
    await encryptSif(plain, passEnc, { passphrase: PASS });
    await encryptSif(plain, signedEnc, { key: (await loadKeyFile(key('rsa-public.pem'))) as PemKey });
    await signSif(signedEnc, [await loadKeyFile(ED_PRIVATE)]);
    // The plaintext exists nowhere from here on.
    rmSync(src, { recursive: true, force: true });
    rsaPrivate = readFileSync(key('rsa-private.pem'), 'utf8');
    secret('rsa', { key: rsaPrivate });
    secret('pass', { passphrase: PASS });
    secret('passaskey', { key: PASS });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    secret('wrongkey', { key: other });
    secret('wrongpass', { passphrase: 'not-the-passphrase' });
    secret('empty', { username: 'x' });
  });
  after(async () => {
    // A failed test may leave a container of a killed Warren: the sweep removes it (and its mounts).
    await sweepStale({ stateDir: join(home, 'containers'), runc: findExecutable('runc') ?? 'runc', tools: findSquashfsTools(), cgroups: detectCgroups() });
    for (const m of cryptMounts().filter((p) => p.startsWith(t.dir))) spawnSync('umount', ['-l', m]);
    t.cleanup();
  });

  function secret(name: string, value: Record<string, string>): void {
    writeFileSync(join(home, 'secrets', `${name}.json`), JSON.stringify(value), { mode: 0o600 });
  }
  const flow = (body: string, policy = ''): string => {
    const f = join(t.dir, `flow-${++n}.yaml`);
    writeFileSync(f, `version: v1\n${policy}jobs:\n${body}`);
    return f;
  };
  const job = (name: string, image: string, secretName?: string, command = '[/bin/cat, /marker]'): string =>
    `  ${name}:\n    image:\n      uri: "file://${image}"\n${secretName ? `      decryptionSecret: secret://user/${secretName}\n` : ''}    command: ${command}\n`;
  const idOf = (stdout: string): string => (JSON.parse(stdout) as { id: string }).id;
  const logOf = (id: string, j: string): string => warren(['logs', id, j]).stdout;
  const count = (): number => JSON.parse(warren(['list', '--json', '--limit', '1000']).stdout || '[]').length;

  /** Nothing of the plaintext is left: no tmpfs mount, no squashfs under WARREN_HOME, no copy under /tmp or /dev/shm. */
  function assertNothingLeft(): void {
    assert.deepEqual(cryptMounts(), [], 'a warren-crypt tmpfs is still mounted');
    assert.deepEqual(plaintextUnder(home, { anySquashfs: true, plainDigest, plainSize }), [], 'a squashfs file under WARREN_HOME');
    assert.deepEqual(plaintextUnder('/tmp', { anySquashfs: false, plainDigest, plainSize }), [], 'a plaintext copy under /tmp');
    assert.deepEqual(plaintextUnder('/dev/shm', { anySquashfs: false, plainDigest, plainSize }), [], 'a plaintext copy under /dev/shm');
    const crypt = join(home, 'containers', 'bundles');
    assert.deepEqual(existsSync(crypt) ? readdirSync(crypt) : [], [], 'a bundle is left');
  }

  test('a PEM private key secret: the job runs the encrypted image; nothing is left', { timeout: 120_000 }, () => {
    const r = warren(['run', flow(job('inside', rsaEnc, 'rsa')), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(logOf(idOf(r.stdout), 'inside'), `${WORD}\n`);
    assertNothingLeft();
  });

  test('a passphrase secret ("passphrase", and "key" holding no PEM block): runs; the passphrase is in no file but its secret', { timeout: 120_000 }, () => {
    const r = warren(['run', flow(job('a', passEnc, 'pass') + job('b', passEnc, 'passaskey')), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const id = idOf(r.stdout);
    assert.equal(logOf(id, 'a'), `${WORD}\n`);
    assert.equal(logOf(id, 'b'), `${WORD}\n`);
    assertNothingLeft();
    const leaks: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && !p.startsWith(join(home, 'secrets')) && readFileSync(p).includes(PASS)) leaks.push(p);
      }
    };
    walk(home);
    assert.deepEqual(leaks, []);
  });

  test('the wrong RSA key and the wrong passphrase: refused before anything runs (SIF_DECRYPT_FAILED), nothing accepted', { timeout: 120_000 }, () => {
    const before = count();
    const r = warren(['run', flow(job('inside', rsaEnc, 'wrongkey'))]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /error\[SIF_DECRYPT_FAILED\].*job inside.*encrypted to RSA key [0-9a-f]+, not to [0-9a-f]+.*secret secret:\/\/user\/wrongkey/);
    const r2 = warren(['run', flow(job('inside', passEnc, 'wrongpass'))]);
    assert.equal(r2.code, 1, r2.stdout + r2.stderr);
    assert.match(r2.stderr, /error\[SIF_DECRYPT_FAILED\].*wrong passphrase/);
    const r3 = warren(['run', flow(job('inside', passEnc, 'rsa'))]);
    assert.equal(r3.code, 1, r3.stdout + r3.stderr);
    assert.match(r3.stderr, /error\[SIF_DECRYPT_FAILED\].*encrypted with a passphrase, not to an RSA key/);
    assert.equal(count(), before);
    assertNothingLeft();
  });

  test('no decryptionSecret: refused at accept time (SIF_ENCRYPTED) with the hint to add it; an unknown secret: SPEC_INVALID at file:line:col', { timeout: 120_000 }, () => {
    const before = count();
    const f = flow(job('inside', rsaEnc));
    const r = warren(['run', f]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`error\\[SIF_ENCRYPTED\\]: ${f.replace(/[.]/g, '\\.')}:3:3: job inside: image file://.*rsa\\.sif is encrypted, and the job has no image\\.decryptionSecret`));
    assert.match(r.stderr, /hint: add `decryptionSecret: secret:\/\/user\/NAME`/);
    const f2 = flow(job('inside', rsaEnc, 'nosuch'));
    const r2 = warren(['run', f2]);
    assert.equal(r2.code, 2, r2.stdout + r2.stderr);
    assert.match(r2.stderr, new RegExp(`${f2.replace(/[.]/g, '\\.')}:6:25: jobs\\.inside\\.image\\.decryptionSecret: secret "secret://user/nosuch" is not defined on this machine`));
    const r3 = warren(['run', flow(job('inside', rsaEnc, 'empty'))]);
    assert.equal(r3.code, 2, r3.stdout + r3.stderr);
    assert.match(r3.stderr, /error\[RUN_SECRET_NOT_FOUND\].*job inside: image decryption secret secret:\/\/user\/empty has no "key" or "passphrase"/);
    assert.equal(count(), before);
  });

  test('an Apptainer LUKS2 image is still refused (SIF_ENCRYPTION_UNSUPPORTED), with a decryptionSecret too, before anything runs', { timeout: 120_000 }, async () => {
    const luks = join(t.dir, 'luks.sif');
    const hdr = Buffer.alloc(4096);
    Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]).copy(hdr, 0);
    hdr.writeUInt16BE(2, 6);
    hdr.writeBigUInt64BE(4096n, 8);
    await createSif(luks, [{ dataType: DataType.Partition, groupId: 1, extra: partitionExtra(FsType.EncryptedSquashfs, PartType.PrimSys, archCode(process.arch)), data: Buffer.concat([hdr, randomBytes(65536)]) }]);
    const before = count();
    for (const body of [job('inside', luks, 'pass'), job('inside', luks)]) {
      const r = warren(['run', flow(body)]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /error\[SIF_ENCRYPTION_UNSUPPORTED\]: .*:3:3: job inside: image .*luks\.sif is encrypted by Apptainer \(LUKS2\).*dm-crypt/);
    }
    assert.equal(count(), before);
    // The runtime says the same when asked directly.
    const rt = createContainerRuntime({ stateDir: join(t.dir, 'rt-luks'), prepareImage: async (uri) => ({ uri, kind: 'sif', path: luks, config: { env: [], labels: {} } }) });
    const dir = join(t.dir, 'luks-job');
    mkdirSync(dir);
    const info = await rt.launch({ id: 'wf/luks/1/1', argv: ['/bin/true'], env: {}, cwd: '/', stdoutPath: join(dir, 'out'), stderrPath: join(dir, 'err'), mounts: [], container: { image: 'luks', decryption: { passphrase: PASS } } }).exited;
    assert.equal(info.reason, 'spawn-error');
    assert.match(info.message ?? '', /SIF_ENCRYPTION_UNSUPPORTED/);
    assertNothingLeft();
  });

  test('require-signed applies to the encrypted file as signed: signed runs, unsigned is refused', { timeout: 120_000 }, () => {
    const policy = `policy:\n  require-signed: true\n  trusted-keys: ["${ED_PUBLIC}"]\n`;
    const r = warren(['run', flow(job('inside', signedEnc, 'rsa'), policy), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(logOf(idOf(r.stdout), 'inside'), `${WORD}\n`);
    const r2 = warren(['run', flow(job('inside', rsaEnc, 'rsa'), policy)]);
    assert.equal(r2.code, 2, r2.stdout + r2.stderr);
    assert.match(r2.stderr, /error\[IMAGE_UNSIGNED\].*rsa\.sif/);
    // The trusted store holds the encrypted copy only.
    assertNothingLeft();
  });

  test('a killed job: the tmpfs is there while it runs and gone after the kill', { timeout: 120_000 }, async () => {
    const state = join(t.dir, 'rt-kill');
    const rt = createContainerRuntime({ stateDir: state, prepareImage: async (uri) => ({ uri, kind: 'sif', path: rsaEnc, config: { env: [], labels: {} } }) });
    const dir = join(t.dir, 'kill-job');
    mkdirSync(dir);
    const task = rt.launch({
      id: 'wf/kill/1/1',
      argv: ['/bin/sleep', '60'],
      env: {},
      cwd: '/',
      stdoutPath: join(dir, 'out'),
      stderrPath: join(dir, 'err'),
      mounts: [],
      container: { image: 'enc', decryption: { key: rsaPrivate } },
    });
    assert.notEqual(await task.started, null, readFileSync(join(dir, 'err'), 'utf8'));
    const mounts = cryptMounts();
    assert.equal(mounts.length, 1, JSON.stringify(mounts));
    assert.ok(mounts[0]!.startsWith(join(state, 'bundles')), mounts[0]);
    const st = statSync(mounts[0]!);
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(statSync(join(mounts[0]!, 'image.squashfs')).mode & 0o777, 0o600);
    // The key is in no process's arguments or environment (runc, mounts, the job).
    const needle = rsaPrivate.split('\n')[2]!;
    const seen: string[] = [];
    for (const pid of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      for (const f of ['cmdline', 'environ']) {
        try {
          if (readFileSync(`/proc/${pid}/${f}`).includes(needle)) seen.push(`${pid}/${f}`);
        } catch {
          /* gone */
        }
      }
    }
    assert.deepEqual(seen, []);
    task.kill('canceled', 200);
    const info = await task.exited;
    assert.equal(info.reason, 'canceled');
    assert.deepEqual(cryptMounts(), []);
    assert.deepEqual(readdirSync(join(state, 'bundles')), []);
  });

  test('Warren killed (SIGKILL) mid-job: the next runtime sweeps the container, its mounts and the tmpfs', { timeout: 120_000 }, async () => {
    const child = spawn(process.execPath, [warrenBin, 'run', flow(job('sleeper', rsaEnc, 'rsa', '[/bin/sleep, "120"]'))], { env: { ...process.env, WARREN_HOME: home }, stdio: 'ignore' });
    try {
      for (let i = 0; i < 600 && cryptMounts().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(cryptMounts().length, 1, 'the job never started');
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    assert.equal(cryptMounts().length, 1, 'the tmpfs stays while nobody cleans up');
    const swept = await sweepStale({ stateDir: join(home, 'containers'), runc: findExecutable('runc') ?? 'runc', tools: findSquashfsTools(), cgroups: detectCgroups() });
    assert.equal(swept.length, 1);
    assertNothingLeft();
  });
});

describe('openEncryptedSif', { skip: isRoot ? false : 'needs root (tmpfs mounts)' }, () => {
  const t = tempDir('warren-encopen-');
  let enc = '';
  let plain: Buffer = Buffer.alloc(0);
  before(async () => {
    const sqfs = markerSquashfs(t.dir, 'open');
    plain = readFileSync(sqfs);
    await makeSif(join(t.dir, 'plain.sif'), [partition(sqfs, 1)], false);
    enc = join(t.dir, 'enc.sif');
    await encryptSif(join(t.dir, 'plain.sif'), enc, { passphrase: PASS });
  });
  after(() => {
    t.cleanup();
    try {
      rmdirSync('/dev/shm/warren-crypt-0'); // only when empty: another run's directories stay
    } catch {
      /* not empty, or gone */
    }
  });

  test('as root: a private tmpfs (0700) with the plaintext (0600), byte for byte; release unmounts it, twice is fine', async () => {
    const mp = join(t.dir, 'mp');
    const o = await openEncryptedSif(enc, { passphrase: PASS, root: true, mountpoint: mp });
    assert.equal(o.via, 'tmpfs-mount');
    assert.equal(o.dir, mp);
    assert.ok(cryptMounts().includes(mp));
    assert.equal(statSync(mp).mode & 0o777, 0o700);
    assert.equal(statSync(o.path).mode & 0o777, 0o600);
    assert.deepEqual(readFileSync(o.path), plain);
    assert.deepEqual(o.partition, { offset: 0, size: plain.length });
    assert.equal(o.source.id, findPrimaryPartition(enc).id);
    await o.release();
    await o.release();
    assert.ok(!cryptMounts().includes(mp));
    assert.equal(existsSync(mp), false);
  });

  test('in /dev/shm (the non-root path): a 0700 directory, removed on release; a disk directory is refused (SIF_DECRYPT_SCRATCH)', async () => {
    const o = await openEncryptedSif(enc, { passphrase: PASS, root: false });
    assert.equal(o.via, 'shm');
    assert.ok(o.dir.startsWith('/dev/shm/warren-crypt-'), o.dir);
    assert.equal(statSync(o.dir).mode & 0o777, 0o700);
    assert.deepEqual(readFileSync(o.path), plain);
    await o.release();
    assert.equal(existsSync(o.dir), false);
    const disk = join(t.dir, 'disk');
    mkdirSync(disk);
    await assert.rejects(openEncryptedSif(enc, { passphrase: PASS, root: false, shmDir: disk }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_SCRATCH' && /is not a tmpfs or ramfs/.test(e.message));
    assert.deepEqual(readdirSync(disk), []);
  });

  test('a changed chunk: SIF_DECRYPT_FAILED, and nothing is left (no mount, no directory, no file)', async () => {
    const bad = join(t.dir, 'bad.sif');
    writeFileSync(bad, readFileSync(enc));
    const p = findPrimaryPartition(bad);
    const fd = openSync(bad, 'r+');
    writeSync(fd, Buffer.from([0x42]), 0, 1, p.offset + Math.floor(p.size / 2));
    closeSync(fd);
    const mp = join(t.dir, 'mp-bad');
    await assert.rejects(openEncryptedSif(bad, { passphrase: PASS, root: true, mountpoint: mp }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /does not authenticate/.test(e.message));
    assert.equal(existsSync(mp), false);
    assert.deepEqual(cryptMounts().filter((m) => m.startsWith(t.dir)), []);
    const before = readdirSync('/dev/shm/warren-crypt-0').length;
    await assert.rejects(openEncryptedSif(bad, { passphrase: PASS, root: false }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED');
    assert.equal(readdirSync('/dev/shm/warren-crypt-0').length, before);
  });

  test('wrong passphrase, no key, a public key: SIF_DECRYPT_FAILED before anything is made; checkDecryptionKey says the same', async () => {
    const mp = join(t.dir, 'mp-wrong');
    await assert.rejects(openEncryptedSif(enc, { passphrase: 'nope', root: true, mountpoint: mp }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /wrong passphrase/.test(e.message));
    await assert.rejects(openEncryptedSif(enc, { root: true, mountpoint: mp }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /no key or passphrase/.test(e.message));
    await assert.rejects(checkDecryptionKey(enc, { key: readFileSync(key('rsa-private.pem'), 'utf8') }), (e: Error & { code?: string }) => e.code === 'SIF_DECRYPT_FAILED' && /passphrase/.test(e.message));
    await checkDecryptionKey(enc, { passphrase: PASS });
    assert.equal(existsSync(mp), false);
  });

  test('sweepDecryptScratch removes the directories and tmpfs mounts of a dead process, not of a live one', async () => {
    const parent = join(t.dir, 'scratch');
    mkdirSync(parent);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadDir = join(parent, `w-${dead.stdout}-abc123`);
    const deadMount = join(parent, `w-${dead.stdout}-def456`);
    const live = join(parent, `w-${process.pid}-0a0b0c`);
    for (const d of [deadDir, deadMount, live]) mkdirSync(d);
    writeFileSync(join(deadDir, 'image.squashfs'), 'x');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'warren-crypt', deadMount]);
    const swept = await sweepDecryptScratch([parent]);
    assert.deepEqual(swept.sort(), [deadDir, deadMount].sort());
    assert.deepEqual(readdirSync(parent), [live.slice(parent.length + 1)]);
    assert.ok(!cryptMounts().includes(deadMount));
  });
});

describe('encrypted SIFs as a non-root user', { skip: isRoot ? false : 'needs root to create the test user' }, () => {
  const USER = 'warren-test-encrun';
  test('decrypted into /dev/shm, extracted there by unsquashfs (no squashfuse) or mounted by squashfuse; nothing is left', { timeout: 180_000 }, async () => {
    const clone = '/proc/sys/kernel/unprivileged_userns_clone';
    const cloneWas = existsSync(clone) ? readFileSync(clone, 'utf8').trim() : undefined;
    if (cloneWas === '0') writeFileSync(clone, '1');
    if (spawnSync('id', ['-u', USER]).status !== 0) execFileSync('useradd', ['-M', '-s', '/bin/sh', USER], { stdio: 'ignore' });
    const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }));
    const work = mkdtempSync('/tmp/warren-encrun-user-');
    try {
      const src = join(work, 'src');
      mkdirSync(src);
      const sqfs = markerSquashfs(src, WORD);
      const plainBytes = readFileSync(sqfs);
      await makeSif(join(src, 'plain.sif'), [partition(sqfs, 1)], false);
      await encryptSif(join(src, 'plain.sif'), join(work, 'enc.sif'), { passphrase: PASS });
      rmSync(src, { recursive: true, force: true });
      // A tool directory without squashfuse (forces the unsquashfs extraction).
      const bin = join(work, 'bin');
      mkdirSync(bin);
      for (const tname of ['runc', 'mount', 'umount', 'unsquashfs']) {
        const p = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, tname)).find((x) => existsSync(x));
        if (p) symlinkSync(p, join(bin, tname));
      }
      execFileSync('chown', ['-R', `${uid}:${gid}`, work]);
      chownSync(work, uid, gid);
      chmodSync(work, 0o755);
      const self = fileURLToPath(import.meta.url);
      const childScript = self.replace(/encrypted-run\.test\.(ts|js)$/, 'encrypted-run-child.$1');
      const r = spawnSync('runuser', ['-u', USER, '--', process.execPath, childScript, work, bin], {
        encoding: 'utf8',
        timeout: 150_000,
        env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', HOME: work, LANG: 'C.UTF-8', WARREN_TEST_PASS: PASS },
        cwd: repoRoot,
      });
      assert.equal(r.status, 0, `child failed: ${r.stderr}\n${r.stdout}`);
      const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, { reason: string; out: string; err: string; via?: string }> & { shmLeft: string[]; bundlesLeft: string[] };
      assert.equal(res.extracted!.reason, 'exit', JSON.stringify(res.extracted));
      assert.equal(res.extracted!.out, `${WORD}\n`);
      assert.match(res.extracted!.via ?? '', /^\/dev\/shm\/warren-crypt-\d+\/w-\d+-[0-9a-f]+\/rootfs\//);
      assert.equal(res.fuse!.reason, 'exit', JSON.stringify(res.fuse));
      assert.equal(res.fuse!.out, `${WORD}\n`);
      assert.equal(res.wrong!.reason, 'spawn-error');
      assert.match(res.wrong!.err, /SIF_DECRYPT_FAILED.*wrong passphrase/);
      assert.deepEqual(res.shmLeft, []);
      assert.deepEqual(res.bundlesLeft, []);
      const digest = createHash('sha256').update(plainBytes).digest('hex');
      assert.deepEqual(plaintextUnder(work, { anySquashfs: true, plainDigest: digest, plainSize: plainBytes.length }), []);
      assert.deepEqual(plaintextUnder('/dev/shm', { anySquashfs: false, plainDigest: digest, plainSize: plainBytes.length }), []);
    } finally {
      if (cloneWas === '0') writeFileSync(clone, '0');
      for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
        const m = l.split(' ')[4];
        if (m && m.startsWith(work)) spawnSync('umount', ['-l', m]);
      }
      rmSync(work, { recursive: true, force: true });
      rmSync(`/dev/shm/warren-crypt-${uid}`, { recursive: true, force: true });
      spawnSync('userdel', [USER]);
    }
  });
});
