// The first start of a cluster server: its CA under DIR (created, or the one already there)
// and an admin token in DIR/admin.token (mode 0600), returned only when it is created so the
// caller prints it once.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { WarrenError } from '../common/index.js';
import { CertificateAuthority } from './ca.js';
import { ensurePrivateDir, writePrivateFile, checkPrivateMode } from './files.js';
import { hashToken } from './tokens.js';

export const ADMIN_TOKEN_FILE = 'admin.token';

export interface ClusterInit {
  ca: CertificateAuthority;
  caCreated: boolean;
  /** The admin token, only when it was just created (print it once); undefined otherwise. */
  adminToken: string | undefined;
}

/** Create (or load) the CA and the admin token of the cluster in DIR (0700). */
export async function initCluster(dir: string, opts: { trustDomain: string }): Promise<ClusterInit> {
  ensurePrivateDir(dir);
  const { ca, created } = await CertificateAuthority.open(dir, opts);
  const path = join(dir, ADMIN_TOKEN_FILE);
  let adminToken: string | undefined;
  if (!existsSync(path)) {
    adminToken = randomBytes(32).toString('base64url');
    writePrivateFile(path, adminToken + '\n');
  }
  return { ca, caCreated: created, adminToken };
}

/** Read the admin token of DIR (its file must be 0600). */
export function readAdminToken(dir: string): string {
  const path = join(dir, ADMIN_TOKEN_FILE);
  if (!existsSync(path)) {
    throw new WarrenError('MESH_ADMIN_TOKEN_NOT_FOUND', `no admin token in ${path}`, { hint: 'start the server once: it creates the CA and the admin token' });
  }
  checkPrivateMode(path, 'the admin token');
  return readFileSync(path, 'utf8').trim();
}

/** Is this the admin token of DIR? (Compared as SHA-256, in constant time.) */
export function isAdminToken(dir: string, presented: string): boolean {
  const a = Buffer.from(hashToken(readAdminToken(dir)), 'hex');
  const b = Buffer.from(hashToken(presented), 'hex');
  return timingSafeEqual(a, b);
}
