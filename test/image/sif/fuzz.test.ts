// Fuzz test of the SIF reader and everything that reads a SIF (issue 7, "Proof"): random
// mutations of the reference's real SIFs (../shared/sif-testdata) give a WarrenError with a
// code, never another exception, a hang (each case has a time limit) or a write outside the
// target directory. Bounded: a fixed number of runs and a time limit for the whole property.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, rmSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { tempDir } from '../../helpers.js';
import { isWarrenError } from '../../../src/common/index.js';
import { KeyStore, loadKeyFile, type LoadedKey } from '../../../src/image/keys/index.js';
import { TrustGate, findPrimaryPartition, inspectSif, readImageConfig, readSif, sifPartition, signSif, verifySif } from '../../../src/image/sif/index.js';
import { SIF_DATA, key } from './util.js';

const IMAGES = readdirSync(join(SIF_DATA, 'images')).filter((f) => f.endsWith('.sif')).sort();

/** Run `f`; a thrown error must be a WarrenError with a code. Returns the code or 'ok'. */
async function outcome(what: string, f: () => unknown): Promise<string> {
  try {
    await f();
    return 'ok';
  } catch (e) {
    if (!isWarrenError(e) || typeof e.code !== 'string' || !/^[A-Z][A-Z0-9_]+$/.test(e.code)) {
      throw new Error(`${what}: not a WarrenError with a code: ${(e as Error)?.stack ?? String(e)}`);
    }
    return e.code;
  }
}

const int64 = fc.oneof(
  fc.constantFrom(0n, -1n, 1n, 128n, 4096n, 32176n, 1n << 31n, 1n << 32n, 1n << 53n, (1n << 63n) - 1n, -(1n << 63n)),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
);

/** A mutation: byte flips (mostly in the header and descriptor table), an int64 overwrite, or a truncation. */
const mutation = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('bytes' as const), at: fc.oneof(fc.nat(4096 + 585 * 4), fc.nat(400_000)), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('int64' as const), at: fc.oneof(fc.integer({ min: 64, max: 120 }).map((x) => x - (x % 8)), fc.nat(585 * 4).map((x) => 4096 + x)), value: int64 }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(400_000) }) },
);

function mutate(src: Buffer, ms: { kind: 'bytes' | 'int64' | 'truncate'; at: number; bytes?: Uint8Array; value?: bigint }[]): Buffer {
  let b = Buffer.from(src);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'bytes') for (let i = 0; i < m.bytes!.length && at + i < b.length; i++) b[at + i] = m.bytes![i]!;
    else if (m.kind === 'int64') {
      if (at + 8 <= b.length) b.writeBigInt64LE(m.value!, at);
    } else b = b.subarray(0, at);
  }
  return b;
}

test('fuzz: mutated reference SIFs give a WarrenError with a code, never a crash, a hang or a write outside the target dir', { timeout: 240_000 }, async () => {
  const { dir: root, cleanup } = tempDir('warren-sif-fuzz-');
  try {
    const sources = IMAGES.map((f) => readFileSync(join(SIF_DATA, 'images', f)));
    const keys: LoadedKey[] = [];
    for (const k of ['ed25519-public.pem', 'rsa-public.pem', 'ecdsa-public.pem', 'private.asc']) keys.push(await loadKeyFile(key(k)));
    const signer = [await loadKeyFile(key('ed25519-private.pem'))];
    const keyStore = new KeyStore(join(root, 'target', 'keys'));
    const codes = new Map<string, number>();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(sources.length - 1), fc.array(mutation, { minLength: 1, maxLength: 6 }), async (which, ms) => {
        runs++;
        const target = join(root, 'target');
        rmSync(target, { recursive: true, force: true });
        mkdirSync(target);
        const f = join(target, 'image.sif');
        const bytes = mutate(sources[which]!, ms);
        writeFileSync(f, bytes);
        const seen: string[] = [];
        seen.push(await outcome('readSif', () => readSif(f)));
        seen.push(await outcome('inspectSif', () => JSON.stringify(inspectSif(f))));
        seen.push(await outcome('findPrimaryPartition', () => findPrimaryPartition(f)));
        seen.push(await outcome('sifPartition', () => sifPartition(f)));
        seen.push(await outcome('readImageConfig', () => readImageConfig(f)));
        seen.push(await outcome('verifySif', async () => {
          const r = await verifySif(f, keys);
          if (!r.verified) throw r.error!;
        }));
        const gate = new TrustGate({ requireSigned: true, trustedKeys: [key('ed25519-public.pem')], keyStore }, { dir: join(target, 'trusted') });
        seen.push(await outcome('TrustGate.admit', () => gate.admit({ uri: 'fuzz', kind: 'sif', path: f })));
        const sizeBefore = statSync(f).size;
        seen.push(await outcome('signSif', () => signSif(f, signer, { deterministic: true })));
        // Signing appends one signature object: it never grows a file by more than that.
        assert.ok(statSync(f).size <= Math.max(sizeBefore, 64 << 10) + (64 << 10), `signing grew the file from ${sizeBefore} to ${statSync(f).size}`);
        for (const c of seen) codes.set(c, (codes.get(c) ?? 0) + 1);
        // Nothing written beside the target directory.
        assert.deepEqual(readdirSync(root), ['target']);
      }),
      { numRuns: 150, interruptAfterTimeLimit: 150_000, timeout: 20_000, seed: 0x5ef1, endOnFailure: true },
    );
    assert.ok(runs >= 20, `only ${runs} runs in the time limit`);
    // The mutations reach the reader's checks (not just "ok" everywhere).
    assert.ok([...codes.keys()].some((c) => c.startsWith('SIF_')), JSON.stringify([...codes]));
  } finally {
    cleanup();
  }
});
