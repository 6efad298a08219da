// Revoked identities: by SPIFFE ID (`warren node revoke NAME`: every certificate of that
// identity) or by serial (one certificate). A MeshServer listens to 'revoked' and closes
// the open connections of what was revoked.
import { EventEmitter } from 'node:events';

/** Serial numbers compare as lowercase hex without leading zero bytes. */
export function normalizeSerial(serial: string): string {
  let s = serial.toLowerCase().replace(/[^0-9a-f]/g, '');
  while (s.length > 2 && s.startsWith('00')) s = s.slice(2);
  return s;
}

export interface Revocation {
  spiffeId?: string;
  serial?: string;
}

export class RevocationList extends EventEmitter<{ revoked: [Revocation] }> {
  private readonly ids = new Set<string>();
  /** serial -> the certificate's notAfter in ms (Infinity when unknown): pruned once expired. */
  private readonly serials = new Map<string, number>();

  /** Revoke every certificate of this SPIFFE ID (`spiffe://td/node/NAME`). */
  revokeId(spiffeId: string): void {
    this.ids.add(spiffeId);
    this.emit('revoked', { spiffeId });
  }

  /** Revoke one certificate; give its notAfter so the entry can be pruned after it. */
  revokeSerial(serial: string, notAfter?: Date): void {
    const s = normalizeSerial(serial);
    this.serials.set(s, notAfter ? notAfter.getTime() : Infinity);
    this.emit('revoked', { serial: s });
  }

  /** Let an identity in again (a node that re-joins under a revoked name). */
  unrevokeId(spiffeId: string): boolean {
    return this.ids.delete(spiffeId);
  }

  isRevoked(spiffeId: string, serial: string): boolean {
    return this.ids.has(spiffeId) || this.serials.has(normalizeSerial(serial));
  }

  /** Forget revoked serials whose certificates have expired anyway. */
  prune(now = Date.now()): void {
    for (const [s, end] of this.serials) if (end < now) this.serials.delete(s);
  }

  get revokedIds(): string[] {
    return [...this.ids];
  }

  get revokedSerials(): string[] {
    return [...this.serials.keys()];
  }
}
