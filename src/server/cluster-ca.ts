// The cluster CA is the same on every server of a cluster: it is kept in the store (as Consul
// keeps its built-in CA root in its state store: access to the database already means control
// of the cluster). The first server to start puts its CA there (insert-if-absent); a server
// with DATA/ca and a store without one uploads it; a server without DATA/ca takes the store's
// (written to DATA/ca); one whose DATA/ca differs from the store's refuses to start.

import { X509Certificate } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../common/index.js';
import { CA_CERT_FILE, CA_KEY_FILE, CertificateAuthority } from '../mesh/index.js';
import type { ClusterCaRecord, Store } from '../store/index.js';

function samePem(a: string, b: string): boolean {
  try {
    return new X509Certificate(a).raw.equals(new X509Certificate(b).raw);
  } catch {
    return a.trim() === b.trim();
  }
}

function fingerprint(pem: string): string {
  try {
    return new X509Certificate(pem).fingerprint256.slice(0, 23);
  } catch {
    return '?';
  }
}

function mismatch(dir: string, local: string, stored: string): WarrenError {
  return new WarrenError('SERVER_CA_MISMATCH', `the cluster CA in ${dir} (SHA-256 ${fingerprint(local)}…) is not the one in the store (SHA-256 ${fingerprint(stored)}…): every server of a cluster must use the same CA`, {
    hint: `move ${dir} aside (this server then takes the store's CA and writes it there), or give --store the database of the cluster this CA belongs to`,
    details: { dir },
  });
}

function trustDomainError(dir: string, found: string, wanted: string): WarrenError {
  return new WarrenError('MESH_CA_TRUST_DOMAIN', `the cluster CA ${dir === '' ? 'in the store' : `in ${dir}`} is for trust domain "${found}", not "${wanted}"`, {
    hint: `start the server with --trust-domain ${found}, or use another store and data directory for a new cluster`,
  });
}

/** The cluster CA, from the store (or put there), kept in DIR too. */
export async function openClusterCa(store: Store, dir: string, trustDomain: string, log: (level: 'info' | 'warn', msg: string) => void): Promise<CertificateAuthority> {
  const stored = await store.getClusterCa();
  const local = CertificateAuthority.exists(dir);
  if (stored) {
    if (stored.trustDomain !== trustDomain) throw trustDomainError('', stored.trustDomain, trustDomain);
    if (local) {
      const pem = readFileSync(join(dir, CA_CERT_FILE), 'utf8');
      if (!samePem(pem, stored.certPem)) throw mismatch(dir, pem, stored.certPem);
      return (await CertificateAuthority.open(dir, { trustDomain })).ca;
    }
    log('info', `took the cluster CA from the store (SHA-256 ${fingerprint(stored.certPem)}…), kept in ${dir}`);
    return CertificateAuthority.import(dir, { trustDomain: stored.trustDomain, certPem: stored.certPem, keyPem: stored.keyPem });
  }
  if (local) {
    const { ca } = await CertificateAuthority.open(dir, { trustDomain });
    const mine: ClusterCaRecord = { trustDomain: ca.trustDomain, certPem: ca.certPem, keyPem: readFileSync(join(dir, CA_KEY_FILE), 'utf8'), createdAt: Date.now() };
    const winner = await store.putClusterCaIfAbsent(mine);
    if (!samePem(winner.certPem, mine.certPem)) throw mismatch(dir, mine.certPem, winner.certPem);
    log('info', `put the cluster CA of ${dir} in the store (SHA-256 ${fingerprint(mine.certPem)}…)`);
    return ca;
  }
  // A new cluster: made beside DIR, offered to the store, and kept only if it won (two
  // servers starting at once on an empty store both end with the one CA that got in).
  const tmp = `${dir}.new-${randomBytes(4).toString('hex')}`;
  try {
    const made = await CertificateAuthority.create(tmp, { trustDomain });
    const mine: ClusterCaRecord = { trustDomain, certPem: made.certPem, keyPem: readFileSync(join(tmp, CA_KEY_FILE), 'utf8'), createdAt: Date.now() };
    const winner = await store.putClusterCaIfAbsent(mine);
    if (samePem(winner.certPem, mine.certPem)) {
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true }); // an empty or partial directory (no CA in it)
      renameSync(tmp, dir);
      log('info', `made the cluster CA (trust domain ${trustDomain}, SHA-256 ${fingerprint(mine.certPem)}…), kept in the store and in ${dir}`);
      return CertificateAuthority.load(dir);
    }
    if (winner.trustDomain !== trustDomain) throw trustDomainError('', winner.trustDomain, trustDomain);
    log('info', `another server made the cluster CA first: took it from the store, kept in ${dir}`);
    return CertificateAuthority.import(dir, { trustDomain: winner.trustDomain, certPem: winner.certPem, keyPem: winner.keyPem });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
