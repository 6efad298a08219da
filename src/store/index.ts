// Persistence of workflows, units, attempts and events (and, for cluster mode, users, API
// tokens, join tokens and nodes) behind one interface. See docs/store.md.
import { join } from 'node:path';
import { WarrenError, warrenHome } from '../common/index.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './types.js';

export { SqliteStore } from './sqlite.js';
export type { SqliteStoreOptions } from './sqlite.js';
export { BatchWriter } from './batch.js';
export type { BatchWriterOptions, Fence } from './batch.js';
export { SCHEMA_VERSION } from './migrations.js';
export { pruneStore } from './prune.js';
export type { PruneStoreOptions, PruneStoreReport } from './prune.js';
export { DEFAULT_RESERVE_BYTES } from './reserve.js';
export type {
  Store, WorkflowRecord, WorkflowPatch, WorkflowFilter, AttemptRecord, EventRecord, WriteBatch, RunLease, LeaseResult,
  UserRecord, ApiTokenRecord, NodeState, NodeRecord, NodePatch, LeaderLease, LeaderResult, ClusterCaRecord, ClusterCaState, CaRotationRecord, AuditRecord, AuditQuery, StoreStats,
  PruneSelect, PrunedWorkflow, PruneQueueEntry, PurgeStep, PrunePreview,
} from './types.js';

/** Open the store named by `url` (`postgres://...`, `sqlite:PATH`, a path), default `$WARREN_HOME/warren.db`. */
export async function openStore(url?: string): Promise<Store> {
  const u = url ?? process.env.WARREN_STORE ?? join(warrenHome(), 'warren.db');
  if (/^postgres(ql)?:\/\//.test(u)) {
    const { PgStore } = await import('./postgres.js');
    return PgStore.connect(u);
  }
  if (/^[a-z]+:\/\//.test(u) && !u.startsWith('sqlite:')) {
    throw new WarrenError('STORE_BAD_URL', `unsupported store URL "${u}"`, {
      hint: 'use a file path or sqlite:PATH for SQLite, or postgres://user@host/db for PostgreSQL',
    });
  }
  return new SqliteStore(u.replace(/^sqlite:/, ''));
}
