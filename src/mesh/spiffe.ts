// SPIFFE IDs (spiffe/spiffe standards/SPIFFE-ID.md) as Warren uses them:
// `spiffe://<trust domain>/<kind>/<name>` with kind node (an agent), server (a Warren server)
// or user (a person, for the web UI and CLI later). Pure: parsing and formatting only.
import { WarrenError, EXIT } from '../common/index.js';

/** What a certificate identifies; the first path segment of its SPIFFE ID. */
export type SpiffeKind = 'node' | 'server' | 'user';
export const SPIFFE_KINDS: readonly SpiffeKind[] = ['node', 'server', 'user'];

export interface SpiffeId {
  /** The whole ID, `spiffe://cluster.example/node/n001`. */
  uri: string;
  trustDomain: string;
  /** The path, `/node/n001`. */
  path: string;
  kind: SpiffeKind;
  name: string;
}

// SPIFFE-ID.md §2.1: the trust domain is lowercase letters, digits, dots, dashes and
// underscores; §2.2: path segments are letters, digits, dots, dashes and underscores,
// never empty, never `.` or `..`. Warren names are one segment each.
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
/** Longest SPIFFE ID the standard lets a validator accept (bytes). */
const MAX_ID = 2048;

/** Is this a valid trust domain name (`cluster.example`)? */
export function isTrustDomain(td: string): boolean {
  return td.length > 0 && td.length <= 255 && TRUST_DOMAIN.test(td);
}

/** Is this a valid Warren name (one SPIFFE path segment: node, server or user name)? */
export function isSpiffeName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && SEGMENT.test(name) && name !== '.' && name !== '..';
}

/** Check a trust domain given by the user (exit 2 with a hint when it is not valid). */
export function checkTrustDomain(td: string): string {
  if (!isTrustDomain(td)) {
    throw new WarrenError('MESH_TRUST_DOMAIN_INVALID', `"${td}" is not a valid trust domain`, {
      hint: 'use lowercase letters, digits, dots, dashes and underscores, e.g. "hpc.example.org"',
    });
  }
  return td;
}

/** `spiffe://<trustDomain>/<kind>/<name>`, checking both parts. */
export function formatSpiffeId(trustDomain: string, kind: SpiffeKind, name: string): SpiffeId {
  checkTrustDomain(trustDomain);
  if (!SPIFFE_KINDS.includes(kind)) {
    throw new WarrenError('MESH_SPIFFE_ID_INVALID', `"${kind}" is not a kind of identity`, {
      hint: `use one of ${SPIFFE_KINDS.join(', ')}`,
    });
  }
  if (!isSpiffeName(name)) {
    throw new WarrenError('MESH_NAME_INVALID', `"${name}" is not a valid ${kind} name`, {
      hint: 'use letters, digits, dots, dashes and underscores (at most 255), e.g. "n001"',
    });
  }
  const path = `/${kind}/${name}`;
  return { uri: `spiffe://${trustDomain}${path}`, trustDomain, path, kind, name };
}

/** The SPIFFE ID of a trust domain itself (`spiffe://td`, no path): the CA's URI SAN. */
export function trustDomainId(trustDomain: string): string {
  return `spiffe://${checkTrustDomain(trustDomain)}`;
}

/**
 * Parse a SPIFFE ID as a Warren leaf identity. Throws MESH_SPIFFE_ID_INVALID for anything
 * that is not a SPIFFE ID at all and MESH_WRONG_PATH for a valid SPIFFE ID whose path is not
 * `/<kind>/<name>` (root, other kinds, more segments).
 */
export function parseSpiffeId(uri: string): SpiffeId {
  const bad = (why: string): WarrenError =>
    new WarrenError('MESH_SPIFFE_ID_INVALID', `"${uri.slice(0, 200)}" is not a SPIFFE ID: ${why}`, {
      hint: 'a Warren identity is spiffe://<trust domain>/<node|server|user>/<name>, issued by the cluster CA',
    });
  if (uri.length > MAX_ID) throw bad(`longer than ${MAX_ID} bytes`);
  if (!uri.startsWith('spiffe://')) throw bad('the scheme is not "spiffe"');
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (!isTrustDomain(td)) throw bad('the trust domain has characters other than a-z 0-9 . - _ (or a port, user info)');
  if (/[?#]/.test(path)) throw bad('a query or fragment is not allowed');
  const segments = path === '' ? [] : path.slice(1).split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || !SEGMENT.test(s)) throw bad(`bad path segment "${s}"`);
  }
  if (segments.length !== 2 || !SPIFFE_KINDS.includes(segments[0] as SpiffeKind)) {
    throw new WarrenError('MESH_WRONG_PATH', `the SPIFFE ID ${uri} is not a Warren identity (path "${path || '/'}")`, {
      hint: 'a Warren identity has the path /node/NAME, /server/NAME or /user/NAME; a trust domain ID (no path) belongs to a CA, never a leaf',
    });
  }
  return { uri, trustDomain: td, path, kind: segments[0] as SpiffeKind, name: segments[1]! };
}
