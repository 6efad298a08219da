// Benchmark: `warren image verify` of a 1 GB SIF vs `sha256sum` of the same file.
// Creates a signed SIF with a 1 GiB partition in a temporary directory, times verifySif (which
// hashes every signed object streaming) and sha256sum side by side (page cache warm for both,
// best of N runs), prints throughputs and the ratio, and deletes the file.
//   node --import tsx bench/sif-verify/run.ts [--size-mib 1024] [--runs 3]
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pemKeyFromText } from '../../src/image/keys/index.js';
import { DataType, FsType, PartType, createSif, partitionExtra, signSif, verifySif } from '../../src/image/sif/index.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const sizeMiB = arg('--size-mib', 1024);
const runs = arg('--runs', 3);
const dir = mkdtempSync(join(tmpdir(), 'warren-bench-sif-'));
const file = join(dir, 'big.sif');

try {
  const block = randomBytes(16 << 20);
  const total = sizeMiB << 20;
  async function* data(): AsyncGenerator<Buffer> {
    for (let done = 0; done < total; done += block.length) {
      const b = Buffer.from(block);
      b.writeUInt32LE(done >>> 20, 0); // every block differs
      yield done + b.length <= total ? b : b.subarray(0, total - done);
    }
  }
  process.stdout.write(`creating a ${sizeMiB} MiB SIF in ${dir} ...\n`);
  await createSif(file, [{ dataType: DataType.Partition, groupId: 1, extra: partitionExtra(FsType.Squashfs, PartType.PrimSys, '02'), data: { stream: data } }]);
  const priv = pemKeyFromText(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'bench-key');
  await signSif(file, [priv]);
  execFileSync('sha256sum', [file]); // warm the page cache

  const bytes = total;
  let best = { warren: Infinity, sha: Infinity };
  for (let i = 0; i < runs; i++) {
    let t = process.hrtime.bigint();
    const r = await verifySif(file, [priv]);
    const tw = Number(process.hrtime.bigint() - t) / 1e9;
    if (!r.verified) throw new Error(`verification failed: ${r.error?.message}`);
    t = process.hrtime.bigint();
    execFileSync('sha256sum', [file]);
    const ts = Number(process.hrtime.bigint() - t) / 1e9;
    best = { warren: Math.min(best.warren, tw), sha: Math.min(best.sha, ts) };
    process.stdout.write(`  run ${i + 1}: warren verify ${tw.toFixed(3)} s, sha256sum ${ts.toFixed(3)} s\n`);
  }
  const mb = (s: number) => (bytes / 1e6 / s).toFixed(0);
  process.stdout.write(`\n${'tool'.padEnd(24)}${'best time'.padStart(12)}${'throughput'.padStart(14)}\n`);
  process.stdout.write(`${'warren image verify'.padEnd(24)}${(best.warren.toFixed(3) + ' s').padStart(12)}${(mb(best.warren) + ' MB/s').padStart(14)}\n`);
  process.stdout.write(`${'sha256sum'.padEnd(24)}${(best.sha.toFixed(3) + ' s').padStart(12)}${(mb(best.sha) + ' MB/s').padStart(14)}\n`);
  const ratio = best.sha / best.warren;
  process.stdout.write(`\nwarren verify throughput / sha256sum throughput = ${ratio.toFixed(2)} (target >= 0.80: ${ratio >= 0.8 ? 'met' : 'NOT met'})\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
