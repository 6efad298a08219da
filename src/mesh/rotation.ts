// CA rotation, the pure part (docs/mesh.md "CA rotation"): given where a rotation stands and
// what the server knows of each node, what comes next and who holds it up.
//
//   trust  the new CA is in every trust bundle beside the old one; certificates are still
//          issued by the old one. Next: issue, once every node that counts trusts the new CA
//          (and the admin's --trust-for has passed).
//   issue  certificates (renewals, joins, the servers' own) are issued by the new CA. Next:
//          retire, once every node that counts presents a certificate from the new CA.
//   retire the old CA leaves the bundles; certificates from it are refused.
//
// Nodes that count are the ready and the down ones (a down node is expected back within the
// lost timer). Lost and revoked nodes do not hold a rotation up: one that comes back after
// the old CA was retired must join again with a token.

export type RotationPhase = 'trust' | 'issue';

export interface RotationState {
  phase: RotationPhase;
  /** SHA-256 fingerprint of the CA being retired. */
  oldCa: string;
  /** SHA-256 fingerprint of the new CA. */
  newCa: string;
  /** The trust phase lasts at least until then (ms since the epoch): time to hand users the new CA file. */
  issueAfter: number;
}

export interface RotationNode {
  name: string;
  state: 'ready' | 'down' | 'lost' | 'revoked';
  /** The fingerprints of the CAs the node trusts, as far as the server knows (null: not known yet). */
  trusts: readonly string[] | null;
  /** The CA that issued the certificate the node presents (as last seen; null: not known). */
  certCa: string | null;
}

export interface RotationStep {
  /** Go to the issue phase, retire the old CA, or wait. */
  action: 'issue' | 'retire' | 'wait';
  /** The nodes it waits for (sorted; empty when it does not wait for nodes). */
  waitingFor: string[];
  /** Why, in words (for `warren ca status`). */
  why: string;
}

/** Does this node hold a rotation up until it has caught up? Ready and down nodes do. */
export function countsForRotation(n: Pick<RotationNode, 'state'>): boolean {
  return n.state === 'ready' || n.state === 'down';
}

/** The nodes that count whose certificate is not (known to be) from CA `ca`, sorted. */
export function nodesNotOn(ca: string, nodes: readonly RotationNode[]): string[] {
  return nodes
    .filter((n) => countsForRotation(n) && n.certCa !== ca)
    .map((n) => n.name)
    .sort();
}

function names(ns: string[]): string {
  return ns.length <= 10 ? ns.join(', ') : `${ns.slice(0, 10).join(', ')} and ${ns.length - 10} more`;
}

/** What the rotation does next. */
export function rotationStep(r: RotationState, nodes: readonly RotationNode[], now: number): RotationStep {
  if (r.phase === 'trust') {
    const waiting = nodes
      .filter((n) => countsForRotation(n) && !(n.trusts ?? []).includes(r.newCa))
      .map((n) => n.name)
      .sort();
    if (waiting.length) return { action: 'wait', waitingFor: waiting, why: `waiting for ${names(waiting)} to trust the new CA (told with their next heartbeat)` };
    if (now < r.issueAfter) return { action: 'wait', waitingFor: [], why: `every node trusts the new CA; it issues certificates from ${new Date(r.issueAfter).toISOString()} (--trust-for)` };
    return { action: 'issue', waitingFor: [], why: 'every node trusts the new CA' };
  }
  const waiting = nodesNotOn(r.newCa, nodes);
  if (waiting.length) return { action: 'wait', waitingFor: waiting, why: `waiting for ${names(waiting)} to present a certificate from the new CA (told to renew with their next heartbeat)` };
  return { action: 'retire', waitingFor: [], why: 'every node presents a certificate from the new CA' };
}
