// Join tokens (`warren token create --ttl 10m [--uses N]`): 32 random bytes, base64url, shown
// once; only their SHA-256 is stored, with an expiry, the uses left and who made them. A
// token is consumed atomically: the store decrements "uses left" only if it is above zero and
// the token has not expired (the server's store does it with one conditional UPDATE).
import { createHash, randomBytes } from 'node:crypto';
import { WarrenError, EXIT } from '../common/index.js';

export interface TokenRecord {
  /** SHA-256 of the token, hex: the key of the record. */
  hash: string;
  /** Short public id (first 12 hex digits of the hash), for listing and deleting. */
  id: string;
  createdBy: string;
  createdAt: number; // ms since the epoch
  expiresAt: number; // ms since the epoch
  usesLeft: number;
  /** Bound to this node name (a boot token, minted by the boot service for one boot of one
   *  node): the join refuses it under any other name. Absent: any name may join with it. */
  node?: string;
}

/** Where token records live. Every method is atomic with respect to the others. */
export interface TokenStore {
  /** Add a record (its hash is new). */
  insert(record: TokenRecord): Promise<void>;
  /**
   * Atomically: if the record exists, has uses left and expiresAt > now, decrement usesLeft
   * and return the record as it is after the decrement; otherwise change nothing and return
   * undefined. (SQL: UPDATE ... SET uses_left = uses_left - 1 WHERE hash = $1 AND
   * uses_left > 0 AND expires_at > $2 AND (node IS NULL OR node = $3) RETURNING *.)
   * With `node`, a token bound to another node is not used (and not used up).
   */
  consume(hash: string, now: number, node?: string): Promise<TokenRecord | undefined>;
  /** The record, whatever its state (to say why a token was refused). */
  get(hash: string): Promise<TokenRecord | undefined>;
  list(): Promise<TokenRecord[]>;
  /** Delete by hash or public id; true if one was deleted. */
  delete(hashOrId: string): Promise<boolean>;
}

/** A TokenStore in memory (tests; a single process). */
export class MemoryTokenStore implements TokenStore {
  private readonly records = new Map<string, TokenRecord>();

  async insert(record: TokenRecord): Promise<void> {
    if (this.records.has(record.hash)) throw new Error('token hash already stored');
    this.records.set(record.hash, { ...record });
  }

  async consume(hash: string, now: number, node?: string): Promise<TokenRecord | undefined> {
    // No await between the check and the update: atomic on Node's single thread.
    const r = this.records.get(hash);
    if (!r || r.usesLeft <= 0 || r.expiresAt <= now) return undefined;
    if (r.node !== undefined && r.node !== node) return undefined;
    r.usesLeft -= 1;
    return { ...r };
  }

  async get(hash: string): Promise<TokenRecord | undefined> {
    const r = this.records.get(hash);
    return r && { ...r };
  }

  async list(): Promise<TokenRecord[]> {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  async delete(hashOrId: string): Promise<boolean> {
    for (const r of this.records.values()) {
      if (r.hash === hashOrId || r.id === hashOrId) return this.records.delete(r.hash);
    }
    return false;
  }
}

/** SHA-256 of a token, hex. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Longest join token life: one week (a join token is for joining now, not a credential). */
export const MAX_TOKEN_TTL_SECONDS = 7 * 24 * 3600;

export interface CreateTokenOptions {
  ttlSeconds: number;
  /** How many joins it allows (default 1). */
  uses?: number;
  createdBy: string;
  /** Bind the token to this node name (the join refuses it under another). */
  node?: string;
  now?: number;
}

/** Make a join token: returns the token (show it once, it is not kept) and its stored record. */
export async function createJoinToken(store: TokenStore, opts: CreateTokenOptions): Promise<{ token: string; record: TokenRecord }> {
  const uses = opts.uses ?? 1;
  if (!Number.isInteger(uses) || uses < 1) {
    throw new WarrenError('MESH_TOKEN_USES_INVALID', `--uses ${uses} is not a whole number of at least 1`, { hint: 'give how many nodes may join with it, e.g. --uses 16' });
  }
  if (!(opts.ttlSeconds > 0 && opts.ttlSeconds <= MAX_TOKEN_TTL_SECONDS)) {
    throw new WarrenError('MESH_TOKEN_TTL_INVALID', `a join token life of ${opts.ttlSeconds} s is out of range`, { hint: 'give --ttl between 1s and 7d, e.g. --ttl 10m' });
  }
  const token = randomBytes(32).toString('base64url');
  const hash = hashToken(token);
  const now = opts.now ?? Date.now();
  const record: TokenRecord = { hash, id: hash.slice(0, 12), createdBy: opts.createdBy, createdAt: now, expiresAt: now + Math.round(opts.ttlSeconds * 1000), usesLeft: uses, ...(opts.node !== undefined ? { node: opts.node } : {}) };
  await store.insert(record);
  return { token, record };
}

/** Use a join token once for the node `name`: the record after the use, or MESH_TOKEN_* /
 *  PROVISION_TOKEN_BOUND (refused). A token bound to another node is refused and left unused. */
export async function consumeJoinToken(store: TokenStore, token: string, now = Date.now(), name?: string): Promise<TokenRecord> {
  const hash = hashToken(token);
  const used = await store.consume(hash, now, name);
  if (used) return used;
  const r = await store.get(hash);
  const hint = 'ask the cluster admin for a new one: `warren token create --ttl 10m`';
  if (!r) throw new WarrenError('MESH_TOKEN_UNKNOWN', 'the join token is not known to this cluster', { hint: `check that it was copied whole; ${hint}` });
  if (r.node !== undefined && r.node !== name) {
    throw new WarrenError('PROVISION_TOKEN_BOUND', `join token ${r.id} was minted for the boot of node ${r.node} and cannot join as ${name ?? '(no name)'}`, {
      hint: `a boot token joins only as its node: start the agent with --name ${r.node}, or give this node a token of its own (\`warren token create --ttl 10m\`)`,
      details: { node: r.node },
    });
  }
  if (r.expiresAt <= now) throw new WarrenError('MESH_TOKEN_EXPIRED', `join token ${r.id} expired at ${new Date(r.expiresAt).toISOString()}`, { hint });
  throw new WarrenError('MESH_TOKEN_USED_UP', `join token ${r.id} has been used up`, { hint: `${hint} (--uses N lets N nodes join with one token)` });
}
