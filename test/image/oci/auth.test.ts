// Registries that require authentication: htpasswd (basic) and the token protocol (bearer),
// with credentials given directly or stored by `warren registry login` (registries.json).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareImage, saveCredentials, loadCredentials, removeCredentials, credentialsFile } from '../../../src/image/index.js';
import { RegistryClient } from '../../../src/image/oci/index.js';
import { tempDir } from '../../helpers.js';
import { registryAvailable, startRegistry, startTokenServer, type LoopbackRegistry, type TokenServer } from './registry.js';
import { pushBusybox } from './fixtures.js';

const skip = registryAvailable() ? false : 'docker-registry is not installed (scripts/apt/image.txt; run scripts/setup.sh)';

function isCode(code: string, mention?: string) {
  return (e: unknown) => {
    const err = e as { code?: string; message: string; hint?: string };
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    assert.ok(err.hint, 'has a hint');
    if (mention) assert.ok(err.message.includes(mention), `names ${mention}: ${err.message}`);
    return true;
  };
}

function noEntries(cacheDir: string): void {
  const images = existsSync(join(cacheDir, 'images')) ? readdirSync(join(cacheDir, 'images')) : [];
  const tmp = existsSync(join(cacheDir, 'tmp')) ? readdirSync(join(cacheDir, 'tmp')) : [];
  assert.deepEqual([images, tmp], [[], []]);
}

describe('registry credentials store', () => {
  test('registries.json is written with mode 0600 and read back', () => {
    const t = tempDir();
    try {
      const file = credentialsFile(t.dir);
      assert.equal(loadCredentials('r.example:5000', file), undefined);
      saveCredentials('r.example:5000', { username: 'u', password: 'p' }, file);
      saveCredentials('other', { token: 'tok' }, file);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(loadCredentials('r.example:5000', file), { username: 'u', password: 'p' });
      assert.deepEqual(loadCredentials('other', file), { token: 'tok' });
      assert.equal(removeCredentials('other', file), true);
      assert.equal(loadCredentials('other', file), undefined);
      writeFileSync(file, '{not json');
      assert.throws(() => loadCredentials('x', file), isCode('IMAGE_CREDENTIALS_INVALID', file));
    } finally {
      t.cleanup();
    }
  });
});

describe('basic auth (htpasswd)', { skip, timeout: 60_000 }, () => {
  let reg: LoopbackRegistry;
  let t: { dir: string; cleanup: () => void };
  const good = { username: 'alice', password: 's3cret-pw' };
  let n = 0;
  const cache = () => join(t.dir, `c${++n}`);
  before(async () => {
    t = tempDir('warren-auth-');
    reg = await startRegistry({ htpasswd: { user: good.username, password: good.password } });
    await pushBusybox(`docker://${reg.host}/private/busybox:1`, { auth: good });
  });
  after(async () => {
    await reg?.stop();
    t?.cleanup();
  });

  test('without credentials: IMAGE_AUTH_REQUIRED naming the registry', async () => {
    const c = cache();
    await assert.rejects(prepareImage(`docker://${reg.host}/private/busybox:1`, { cacheDir: c }), isCode('IMAGE_AUTH_REQUIRED', reg.host));
    noEntries(c);
  });

  test('wrong password: IMAGE_AUTH_FAILED', async () => {
    const c = cache();
    await assert.rejects(
      prepareImage(`docker://${reg.host}/private/busybox:1`, { cacheDir: c, auth: { username: 'alice', password: 'wrong' } }),
      isCode('IMAGE_AUTH_FAILED', reg.host),
    );
    noEntries(c);
  });

  test('right credentials given directly, and stored by login', async () => {
    const img = await prepareImage(`docker://${reg.host}/private/busybox:1`, { cacheDir: cache(), auth: good });
    assert.ok(existsSync(join(img.path, 'bin', 'busybox')));
    const home = join(t.dir, 'home');
    const oldHome = process.env.WARREN_HOME;
    process.env.WARREN_HOME = home;
    try {
      saveCredentials(reg.host, good);
      const img2 = await prepareImage(`docker://${reg.host}/private/busybox:1`, { cacheDir: cache() });
      assert.equal(img2.digest, img.digest);
    } finally {
      if (oldHome === undefined) delete process.env.WARREN_HOME;
      else process.env.WARREN_HOME = oldHome;
    }
  });

  test('ping checks credentials (what `warren registry login` does)', async () => {
    const ok = new RegistryClient(reg.host, { auth: good });
    await ok.ping();
    await ok.close();
    const bad = new RegistryClient(reg.host, { auth: { username: 'alice', password: 'nope' } });
    await assert.rejects(bad.ping(), isCode('IMAGE_AUTH_FAILED', reg.host));
    await bad.close();
  });
});

describe('bearer token auth (token service + registry)', { skip, timeout: 60_000 }, () => {
  let reg: LoopbackRegistry;
  let tokens: TokenServer;
  let t: { dir: string; cleanup: () => void };
  const good = { username: 'bob', password: 'tokpw' };
  let n = 0;
  const cache = () => join(t.dir, `c${++n}`);
  before(async () => {
    t = tempDir('warren-token-');
    tokens = await startTokenServer({ bob: 'tokpw' });
    reg = await startRegistry({ token: tokens.setup });
    await pushBusybox(`docker://${reg.host}/team/busybox:2`, { auth: good });
  });
  after(async () => {
    await reg?.stop();
    await tokens?.stop();
    t?.cleanup();
  });

  test('pull with a token obtained from the realm with basic credentials', async () => {
    tokens.issued.length = 0;
    const img = await prepareImage(`docker://${reg.host}/team/busybox:2`, { cacheDir: cache(), auth: good });
    assert.ok(existsSync(join(img.path, 'bin', 'busybox')));
    assert.ok(tokens.issued.some((i) => i === 'bob repository:team/busybox:pull'), tokens.issued.join('; '));
  });

  test('a bearer token given directly (e.g. from a workflow secret) is used as is', async () => {
    const realm = new URL(tokens.setup.realm);
    realm.searchParams.set('service', tokens.setup.service);
    realm.searchParams.set('scope', 'repository:team/busybox:pull');
    const res = await fetch(realm, { headers: { authorization: 'Basic ' + Buffer.from('bob:tokpw').toString('base64') } });
    const { token } = (await res.json()) as { token: string };
    const img = await prepareImage(`docker://${reg.host}/team/busybox:2`, { cacheDir: cache(), auth: { token } });
    assert.ok(existsSync(join(img.path, 'bin', 'busybox')));
  });

  test('anonymous token has no access: IMAGE_AUTH_REQUIRED; bad password: IMAGE_AUTH_FAILED', async () => {
    const c = cache();
    await assert.rejects(prepareImage(`docker://${reg.host}/team/busybox:2`, { cacheDir: c }), isCode('IMAGE_AUTH_REQUIRED', reg.host));
    await assert.rejects(
      prepareImage(`docker://${reg.host}/team/busybox:2`, { cacheDir: c, auth: { username: 'bob', password: 'bad' } }),
      isCode('IMAGE_AUTH_FAILED', reg.host),
    );
    noEntries(c);
  });
});
