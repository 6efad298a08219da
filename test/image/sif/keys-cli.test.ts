// `warren key export|remove`, `warren key list --secret`, and the signatures (with their
// signers) in `warren image inspect --json`: through the CLI, with a real key store.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { tempDir, sharedDir } from '../../helpers.js';
import { cli, copyImage } from './util.js';

const BUSYBOX = join(sharedDir, 'apptainer-testdata', 'busybox_amd64.sif');
/** The OpenPGP key that signed Apptainer's busybox test image (its public key is not shipped). */
const APPTAINER_SIGNER = '1137e72e6816bfc06d9caa0d15f3f4f4f14b03b2';

interface Listed { fingerprint: string; name: string; trusted: boolean; private: boolean }

describe('key export, remove, list --secret; inspect --json signatures', () => {
  test('export: public by default, private with --secret into a 0600 file; an existing file is refused', () => {
    const { dir, cleanup } = tempDir('warren-keyx-');
    try {
      const env = { WARREN_HOME: join(dir, 'home') };
      const g = cli(['key', 'generate', '--name', 'alice'], env);
      assert.equal(g.code, 0, g.stderr);
      const fp = g.stdout.trim();
      const pub = cli(['key', 'export', 'alice'], env);
      assert.equal(pub.code, 0, pub.stderr);
      assert.match(pub.stdout, /^-----BEGIN PUBLIC KEY-----/);
      assert.doesNotMatch(pub.stdout, /PRIVATE/);
      // The exported public key is the stored one: same key as the private key's public half.
      const out = join(dir, 'alice.key.pem');
      const sec = cli(['key', 'export', '--secret', fp.slice(0, 12), out], env);
      assert.equal(sec.code, 0, sec.stderr);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const priv = createPrivateKey(readFileSync(out, 'utf8'));
      assert.equal(createPublicKey(priv).export({ type: 'spki', format: 'pem' }).toString(), pub.stdout);
      const again = cli(['key', 'export', '--secret', 'alice', out], env);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /error\[KEY_EXPORT_EXISTS\].*already exists/);
      assert.match(again.stderr, /hint: .*--force/);
      assert.equal(cli(['key', 'export', '--secret', '--force', 'alice', out], env).code, 0);
      // A public key file is written 0644 and is the same text.
      const pubFile = join(dir, 'alice.pub.pem');
      assert.equal(cli(['key', 'export', 'alice', pubFile], env).code, 0);
      assert.equal(readFileSync(pubFile, 'utf8'), pub.stdout);
      assert.equal(statSync(pubFile).mode & 0o777, 0o644);
      // Unknown key; --secret of a key stored without its private half.
      const none = cli(['key', 'export', 'bob'], env);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /error\[KEY_NOT_FOUND\]/);
      assert.equal(cli(['key', 'remove', '--force', 'alice'], env).code, 0);
      assert.equal(cli(['key', 'import', pubFile, '--name', 'pubonly'], env).code, 0);
      const noPriv = cli(['key', 'export', '--secret', 'pubonly', join(dir, 'x.pem')], env);
      assert.equal(noPriv.code, 2);
      assert.match(noPriv.stderr, /error\[KEY_PRIVATE_REQUIRED\]/);
      assert.equal(existsSync(join(dir, 'x.pem')), false);
    } finally {
      cleanup();
    }
  });

  test('list --secret shows only keys with a private part; remove refuses a trusted key without --force; remove --secret keeps the public key', () => {
    const { dir, cleanup } = tempDir('warren-keyr-');
    try {
      const env = { WARREN_HOME: join(dir, 'home') };
      const a = cli(['key', 'generate', '--name', 'signer'], env).stdout.trim();
      const b = cli(['key', 'generate', '--name', 'other', '--no-trust'], env).stdout.trim();
      const pubFile = join(dir, 'other.pub.pem');
      assert.equal(cli(['key', 'export', 'other', pubFile], env).code, 0);
      assert.equal(cli(['key', 'remove', 'other'], env).code, 0); // not trusted: no --force needed
      assert.equal(cli(['key', 'import', pubFile, '--name', 'other-public'], env).code, 0);
      const list = (extra: string[] = []): Listed[] => JSON.parse(cli(['key', 'list', '--json', ...extra], env).stdout) as Listed[];
      assert.deepEqual(list().map((k) => k.name).sort(), ['other-public', 'signer']);
      assert.deepEqual(list(['--secret']).map((k) => k.fingerprint), [a]);
      assert.match(cli(['key', 'list', '--secret'], env).stdout, /signer/);
      assert.doesNotMatch(cli(['key', 'list', '--secret'], env).stdout, /other-public/);

      const refused = cli(['key', 'remove', 'signer'], env);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /error\[KEY_TRUSTED\].*is trusted/);
      assert.match(refused.stderr, /hint: .*warren key untrust .*--force/);
      assert.equal(list().length, 2, 'nothing removed');

      const secretOnly = cli(['key', 'remove', '--secret', 'signer'], env);
      assert.equal(secretOnly.code, 0, secretOnly.stderr);
      const left = list().find((k) => k.fingerprint === a)!;
      assert.equal(left.private, false);
      assert.equal(left.trusted, true, 'the public key keeps its trust');
      assert.deepEqual(list(['--secret']), []);
      assert.equal(existsSync(join(dir, 'home', 'keys', `${a}.key.pem`)), false);
      assert.equal(existsSync(join(dir, 'home', 'keys', `${a}.pub.pem`)), true);
      const twice = cli(['key', 'remove', '--secret', 'signer'], env);
      assert.equal(twice.code, 2);
      assert.match(twice.stderr, /error\[KEY_PRIVATE_REQUIRED\]/);

      assert.equal(cli(['key', 'untrust', 'signer'], env).code, 0);
      assert.equal(cli(['key', 'remove', 'signer'], env).code, 0);
      assert.equal(cli(['key', 'remove', '--force', 'other-public'], env).code, 0);
      assert.deepEqual(list(), []);
      assert.equal(existsSync(join(dir, 'home', 'keys', `${a}.pub.pem`)), false);
      assert.ok(b);
    } finally {
      cleanup();
    }
  });

  test('inspect --json lists each signature with its signers: named and verified when the store has the key, by fingerprint when not', () => {
    const { dir, cleanup } = tempDir('warren-keysig-');
    try {
      const env = { WARREN_HOME: join(dir, 'home') };
      // Apptainer's own signed image: its OpenPGP signer is not in the store.
      const ins = cli(['image', 'inspect', '--json', BUSYBOX], env);
      assert.equal(ins.code, 0, ins.stderr);
      const doc = JSON.parse(ins.stdout) as { descriptors: unknown[]; signatures: { kind: string; verified: boolean; signers: { fingerprint: string; verified: boolean; inStore: boolean }[] }[] };
      assert.ok(doc.descriptors.length > 0, 'the descriptor listing is still there');
      assert.equal(doc.signatures.length, 1);
      assert.equal(doc.signatures[0]!.kind, 'pgp');
      assert.equal(doc.signatures[0]!.verified, false);
      assert.deepEqual(doc.signatures[0]!.signers, [{ fingerprint: APPTAINER_SIGNER, verified: false, inStore: false }]);

      // Unsigned image: an empty list. Signed by a store key: named, trusted, verified.
      const image = join(dir, 'mine.sif');
      copyImage(BUSYBOX, image);
      const fp = cli(['key', 'generate', '--name', 'lab'], env).stdout.trim();
      const signed = cli(['image', 'sign', image, '-k', 'lab'], env);
      assert.equal(signed.code, 0, signed.stderr);
      const mine = JSON.parse(cli(['image', 'inspect', '--json', image], env).stdout) as typeof doc & { signatures: { signers: Record<string, unknown>[] }[] };
      const dsse = mine.signatures.filter((s) => s.kind !== 'pgp');
      assert.equal(dsse.length, 1);
      assert.equal(dsse[0]!.verified, true);
      assert.deepEqual(dsse[0]!.signers, [{ fingerprint: fp, verified: true, inStore: true, name: 'lab', trusted: true }]);
    } finally {
      cleanup();
    }
  });
});
