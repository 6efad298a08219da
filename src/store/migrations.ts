// The store's schema, as an ordered list of forward migrations shared by both stores. The
// schema version is `PRAGMA user_version` in SQLite and the one row of `warren_schema` in
// PostgreSQL; a database at version N gets steps N+1.. applied on open, each in its own
// transaction together with the new version number. Version 1 is the schema of the first
// releases (written with CREATE ... IF NOT EXISTS, so a database they made, which says version
// 0, gets it as a no-op). Never edit a step once released: add one.

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  what: string;
  /** SQL statements separated by `;`, per dialect (the same text when `both`). */
  sql: { both: string } | Record<Dialect, string>;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'workflows, units, attempts, events, job history',
    sql: {
      sqlite: `
CREATE TABLE IF NOT EXISTS workflows (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  file TEXT,
  status TEXT NOT NULL,
  spec TEXT NOT NULL,
  options TEXT NOT NULL,
  run_dir TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  runner_pid INTEGER,
  runner_host TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS workflows_created ON workflows(created_at);
CREATE TABLE IF NOT EXISTS units (
  workflow_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  key TEXT NOT NULL,
  kind TEXT NOT NULL,
  job TEXT NOT NULL,
  task INTEGER,
  state TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  exit_code INTEGER,
  reason TEXT,
  message TEXT,
  started_at INTEGER,
  ended_at INTEGER,
  PRIMARY KEY (workflow_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
  workflow_id TEXT NOT NULL,
  key TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  exit_code INTEGER,
  signal TEXT,
  reason TEXT,
  message TEXT,
  pid INTEGER,
  PRIMARY KEY (workflow_id, key, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workflow_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  key TEXT,
  level TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_wf ON events(workflow_id, id);
CREATE TABLE IF NOT EXISTS job_history (
  job TEXT NOT NULL,
  ended_at INTEGER NOT NULL,
  seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS job_history_job ON job_history(job, ended_at);
`,
      postgres: `
CREATE TABLE IF NOT EXISTS workflows (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, file TEXT, status TEXT NOT NULL, spec JSONB NOT NULL,
  options JSONB NOT NULL, run_dir TEXT NOT NULL, created_at BIGINT NOT NULL, started_at BIGINT, ended_at BIGINT,
  runner_pid INTEGER, runner_host TEXT, cancel_requested BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX IF NOT EXISTS workflows_created ON workflows(created_at);
CREATE TABLE IF NOT EXISTS units (
  workflow_id TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, job TEXT NOT NULL,
  task INTEGER, state TEXT NOT NULL, attempt INTEGER NOT NULL, exit_code INTEGER, reason TEXT, message TEXT,
  started_at BIGINT, ended_at BIGINT, PRIMARY KEY (workflow_id, key));
CREATE TABLE IF NOT EXISTS attempts (
  workflow_id TEXT NOT NULL, key TEXT NOT NULL, attempt INTEGER NOT NULL, started_at BIGINT, ended_at BIGINT,
  exit_code INTEGER, signal TEXT, reason TEXT, message TEXT, pid INTEGER, PRIMARY KEY (workflow_id, key, attempt));
CREATE TABLE IF NOT EXISTS events (
  id BIGSERIAL PRIMARY KEY, workflow_id TEXT NOT NULL, at BIGINT NOT NULL, key TEXT, level TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_wf ON events(workflow_id, id);
CREATE TABLE IF NOT EXISTS job_history (job TEXT NOT NULL, ended_at BIGINT NOT NULL, seconds DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS job_history_job ON job_history(job, ended_at);
`,
    },
  },
  {
    version: 2,
    what: 'ownership lease instead of runner pid/host; attempt id, term, cgroup and node',
    sql: {
      both: `
ALTER TABLE workflows ADD COLUMN lease_owner TEXT;
ALTER TABLE workflows ADD COLUMN lease_term INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflows ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE workflows DROP COLUMN runner_pid;
ALTER TABLE workflows DROP COLUMN runner_host;
ALTER TABLE attempts ADD COLUMN attempt_id TEXT;
ALTER TABLE attempts ADD COLUMN term INTEGER;
ALTER TABLE attempts ADD COLUMN cgroup TEXT;
ALTER TABLE attempts ADD COLUMN node TEXT;
UPDATE attempts SET attempt_id = workflow_id || '/' || key || '/' || attempt WHERE attempt_id IS NULL;
`,
    },
  },
  {
    version: 3,
    what: 'cluster mode: users, API tokens, join tokens, nodes; the owner of a workflow',
    // api_tokens.user_name references users: PostgreSQL enforces it (a token inserted while its
    // user is removed waits for that and then fails); SQLite, which does not enforce foreign
    // keys here, checks it in the inserting transaction (its writers are serialized).
    sql: {
      sqlite: `
ALTER TABLE workflows ADD COLUMN owner TEXT;
CREATE INDEX workflows_owner ON workflows(owner, created_at);
CREATE TABLE users (
  name TEXT PRIMARY KEY,
  unix_user TEXT NOT NULL,
  admin INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE TABLE api_tokens (
  hash TEXT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked INTEGER NOT NULL DEFAULT 0,
  last_used_at INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens(user_name);
CREATE TABLE join_tokens (
  hash TEXT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  uses_left INTEGER NOT NULL
);
CREATE TABLE nodes (
  name TEXT PRIMARY KEY,
  info TEXT NOT NULL,
  state TEXT NOT NULL,
  drained INTEGER NOT NULL DEFAULT 0,
  cert_serial TEXT,
  joined_at INTEGER NOT NULL,
  last_seen_at INTEGER,
  state_changed_at INTEGER NOT NULL
);
`,
      postgres: `
ALTER TABLE workflows ADD COLUMN owner TEXT;
CREATE INDEX workflows_owner ON workflows(owner, created_at);
CREATE TABLE users (name TEXT PRIMARY KEY, unix_user TEXT NOT NULL, admin BOOLEAN NOT NULL DEFAULT false, created_at BIGINT NOT NULL);
CREATE TABLE api_tokens (
  hash TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
  created_at BIGINT NOT NULL, expires_at BIGINT, revoked BOOLEAN NOT NULL DEFAULT false, last_used_at BIGINT);
CREATE INDEX api_tokens_user ON api_tokens(user_name);
CREATE TABLE join_tokens (
  hash TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, created_by TEXT NOT NULL, created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL, uses_left INTEGER NOT NULL);
CREATE TABLE nodes (
  name TEXT PRIMARY KEY, info JSONB NOT NULL, state TEXT NOT NULL, drained BOOLEAN NOT NULL DEFAULT false,
  cert_serial TEXT, joined_at BIGINT NOT NULL, last_seen_at BIGINT, state_changed_at BIGINT NOT NULL);
`,
    },
  },
  {
    version: 4,
    what: 'two servers, one leader: the leader lease (one row) and the cluster CA (one row)',
    // The leader lease: one row, changed only by conditional UPDATEs (acquire when expired or
    // already ours, renew by holder and term); expires_at is ms since the epoch on the
    // database's clock (PostgreSQL: now()), so the servers' own clocks do not matter.
    sql: {
      sqlite: `
CREATE TABLE leader_lease (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT,
  url TEXT,
  term INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER NOT NULL DEFAULT 0
);
INSERT INTO leader_lease (id, holder, url, term, expires_at) VALUES (1, NULL, NULL, 0, 0);
CREATE TABLE cluster_ca (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  trust_domain TEXT NOT NULL,
  cert_pem TEXT NOT NULL,
  key_pem TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`,
      postgres: `
CREATE TABLE leader_lease (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT, url TEXT, term BIGINT NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL DEFAULT 0);
INSERT INTO leader_lease (id, holder, url, term, expires_at) VALUES (1, NULL, NULL, 0, 0);
CREATE TABLE cluster_ca (id INTEGER PRIMARY KEY CHECK (id = 1), trust_domain TEXT NOT NULL, cert_pem TEXT NOT NULL, key_pem TEXT NOT NULL, created_at BIGINT NOT NULL);
`,
    },
  },
  {
    version: 5,
    what: 'operations: the append-only audit log, why a node is drained (and by whom), finished workflows by end time (retention)',
    // The audit log is append-only in the database itself: a trigger refuses every UPDATE and
    // DELETE (and, in PostgreSQL, TRUNCATE), whoever sends it.
    sql: {
      sqlite: `
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  source TEXT,
  result TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_actor ON audit(actor, at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
ALTER TABLE nodes ADD COLUMN drain_reason TEXT;
ALTER TABLE nodes ADD COLUMN drained_by TEXT;
CREATE INDEX workflows_ended ON workflows(status, ended_at);
`,
      postgres: `
CREATE TABLE audit (
  id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT,
  source TEXT, result TEXT NOT NULL, details JSONB NOT NULL DEFAULT '{}'::jsonb);
CREATE INDEX audit_at ON audit(at);
CREATE INDEX audit_actor ON audit(actor, at);
CREATE FUNCTION warren_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION warren_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION warren_audit_append_only();
ALTER TABLE nodes ADD COLUMN drain_reason TEXT;
ALTER TABLE nodes ADD COLUMN drained_by TEXT;
CREATE INDEX workflows_ended ON workflows(status, ended_at);
`,
    },
  },
  {
    version: 6,
    what: 'CA rotation: the new CA beside the current one and the phase (in the cluster CA row), the CA a node\'s certificate is from',
    // One row still: a rotation starts, changes phase and ends by conditional UPDATEs of it
    // (the current CA becomes previous_cert_pem when the new one takes its place).
    sql: {
      both: `
ALTER TABLE cluster_ca ADD COLUMN next_cert_pem TEXT;
ALTER TABLE cluster_ca ADD COLUMN next_key_pem TEXT;
ALTER TABLE cluster_ca ADD COLUMN rotation_phase TEXT;
ALTER TABLE cluster_ca ADD COLUMN rotation_started_at BIGINT;
ALTER TABLE cluster_ca ADD COLUMN rotation_phase_at BIGINT;
ALTER TABLE cluster_ca ADD COLUMN rotation_issue_after BIGINT;
ALTER TABLE cluster_ca ADD COLUMN previous_cert_pem TEXT;
ALTER TABLE cluster_ca ADD COLUMN retired_at BIGINT;
ALTER TABLE nodes ADD COLUMN cert_ca TEXT;
`,
    },
  },
  {
    version: 7,
    what: 'retention: the queue of pruned workflows whose rows and files are being removed, job history by end time',
    // A pruned workflow's row is deleted first (in a short transaction, with the condition
    // that it is finished and not leased in the DELETE itself) and its id queued here in the
    // same transaction; its units, attempts and events go afterwards in small batches, and the
    // queue entry goes once they and its run directory are gone (a crashed pruner resumes).
    sql: {
      both: `
CREATE TABLE prune_queue (
  id TEXT PRIMARY KEY,
  run_dir TEXT NOT NULL,
  pruned_at BIGINT NOT NULL
);
CREATE INDEX job_history_ended ON job_history(ended_at);
`,
    },
  },
  {
    version: 8,
    what: 'provisioning: profiles, inventory nodes (fields as JSON, profiles in order), one row per MAC and per IP of every interface (unique), boot status',
    // Every MAC and every IP (without its prefix) of every node's interfaces is a row of
    // provision_addresses, whose primary key makes two nodes with one address impossible even
    // for two writers racing; provision_node_profiles says which nodes use a profile (the node
    // row keeps their order). Children are deleted explicitly with their node (SQLite does not
    // enforce foreign keys here).
    sql: {
      sqlite: `
CREATE TABLE provision_profiles (
  name TEXT PRIMARY KEY,
  fields TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE provision_nodes (
  name TEXT PRIMARY KEY,
  profiles TEXT NOT NULL,
  fields TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE provision_node_profiles (
  node TEXT NOT NULL,
  pos INTEGER NOT NULL,
  profile TEXT NOT NULL,
  PRIMARY KEY (node, pos)
);
CREATE INDEX provision_node_profiles_profile ON provision_node_profiles(profile);
CREATE TABLE provision_addresses (
  kind TEXT NOT NULL CHECK (kind IN ('mac', 'ip')),
  value TEXT NOT NULL,
  node TEXT NOT NULL,
  device TEXT NOT NULL,
  PRIMARY KEY (kind, value)
);
CREATE INDEX provision_addresses_node ON provision_addresses(node);
CREATE TABLE provision_boot (
  node TEXT PRIMARY KEY,
  last_request_at INTEGER,
  last_request TEXT,
  from_addr TEXT,
  booted_at INTEGER,
  image_digest TEXT,
  system_overlay_at INTEGER,
  runtime_overlay_at INTEGER
);
`,
      postgres: `
CREATE TABLE provision_profiles (name TEXT PRIMARY KEY, fields JSONB NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE provision_nodes (name TEXT PRIMARY KEY, profiles JSONB NOT NULL, fields JSONB NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE provision_node_profiles (
  node TEXT NOT NULL REFERENCES provision_nodes(name) ON DELETE CASCADE, pos INTEGER NOT NULL,
  profile TEXT NOT NULL REFERENCES provision_profiles(name), PRIMARY KEY (node, pos));
CREATE INDEX provision_node_profiles_profile ON provision_node_profiles(profile);
CREATE TABLE provision_addresses (
  kind TEXT NOT NULL CHECK (kind IN ('mac', 'ip')), value TEXT NOT NULL,
  node TEXT NOT NULL REFERENCES provision_nodes(name) ON DELETE CASCADE, device TEXT NOT NULL, PRIMARY KEY (kind, value));
CREATE INDEX provision_addresses_node ON provision_addresses(node);
CREATE TABLE provision_boot (
  node TEXT PRIMARY KEY REFERENCES provision_nodes(name) ON DELETE CASCADE, last_request_at BIGINT, last_request TEXT, from_addr TEXT,
  booted_at BIGINT, image_digest TEXT, system_overlay_at BIGINT, runtime_overlay_at BIGINT);
`,
    },
  },
  {
    version: 9,
    what: 'provisioning: a join token bound to one node (the boot service mints one per boot; the join refuses it under another name)',
    // v8 is the provisioning inventory (another branch of issue 13); the steps are applied in order.
    sql: {
      both: `
ALTER TABLE join_tokens ADD COLUMN node TEXT;
CREATE INDEX join_tokens_node ON join_tokens(node);
`,
    },
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The SQL of one step for a dialect. */
export function migrationSql(m: Migration, dialect: Dialect): string {
  return 'both' in m.sql ? m.sql.both : m.sql[dialect];
}

/** The steps to apply to a database at `version`. */
export function pendingMigrations(version: number): Migration[] {
  return MIGRATIONS.filter((m) => m.version > version);
}
