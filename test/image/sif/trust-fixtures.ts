// Fixtures of the signed-image attack tests: busybox SIFs whose /marker says which bytes ran,
// signed with the reference's Ed25519 test key, and crafted (tampered) variants.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBusyboxRootfs } from '../../runtime/container/fixtures.js';
import { warrenBin } from '../../helpers.js';
import { loadKeyFile } from '../../../src/image/keys/index.js';
import { DataType, FsType, PartType, archCode, createSif, findPrimaryPartition, partitionExtra, signSif } from '../../../src/image/sif/index.js';
import type { ObjectInput } from '../../../src/image/sif/index.js';
import { key } from './util.js';

export const ED_PUBLIC = key('ed25519-public.pem');
export const ED_PRIVATE = key('ed25519-private.pem');
export const ED_FP = 'c7a97c65b9694925c668f302cf249e75683cf01c0815ccfc8e53dbe9e974985b';

/**
 * An uncompressed, reproducible squashfs of a busybox root with /marker = `marker`: two
 * markers of the same length give squashfs files of the same size (same-size rewrites).
 */
export function markerSquashfs(dir: string, marker: string): string {
  const root = makeBusyboxRootfs(join(dir, `root-${marker}`));
  writeFileSync(join(root, 'marker'), `${marker}\n`);
  const out = join(dir, `${marker}.squashfs`);
  execFileSync('mksquashfs', [root, out, '-quiet', '-noappend', '-all-root', '-no-progress', '-noI', '-noD', '-noF', '-noX', '-mkfs-time', '0', '-all-time', '0'], { stdio: 'ignore' });
  return out;
}

export function partition(sqfs: string, groupId: number, partType: number = PartType.PrimSys): ObjectInput {
  return { dataType: DataType.Partition, groupId, extra: partitionExtra(FsType.Squashfs, partType, archCode(process.arch)), data: { file: sqfs, offset: 0, size: statSync(sqfs).size } };
}

/** A SIF with the given objects, signed (all groups) with the Ed25519 test key when `sign`. */
export async function makeSif(out: string, objects: ObjectInput[], sign = true): Promise<string> {
  await createSif(out, objects, { deterministic: true });
  if (sign) await signSif(out, [await loadKeyFile(ED_PRIVATE)], { deterministic: true });
  return out;
}

/** Where `badSqfs` goes to rewrite `sif`'s partition in place (it must have the same size). */
export function rewriteTarget(sif: string, badSqfs: string): { offset: number; size: number } {
  const p = findPrimaryPartition(sif);
  const bytes = readFileSync(badSqfs);
  if (bytes.length !== p.size) throw new Error(`squashfs sizes differ (${bytes.length} vs ${p.size}): cannot rewrite in place`);
  return { offset: p.offset, size: p.size };
}

export interface Res {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `warren ARGS` in a child process with WARREN_HOME = home. */
export function warrenIn(home: string): (args: string[]) => Res {
  return (args) => {
    const r = spawnSync('node', [warrenBin, ...args], { env: { ...process.env, WARREN_HOME: home }, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
}
