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
import { CA_CERT_FILE, CA_KEY_FILE, CertificateAuthority, TrustBundle, nodesNotOn, rotationStep, writePrivateFile, type RotationNode, type RotationState } from '../mesh/index.js';
import type { CaRotationRecord, ClusterCaRecord, ClusterCaState, Store } from '../store/index.js';
import type { CaNodeView, CaStatusView, CaView } from '../api/index.js';

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
  const state = await store.getClusterCaState();
  const stored = state?.ca;
  const local = CertificateAuthority.exists(dir);
  if (stored) {
    if (stored.trustDomain !== trustDomain) throw trustDomainError('', stored.trustDomain, trustDomain);
    if (local) {
      const pem = readFileSync(join(dir, CA_CERT_FILE), 'utf8');
      if (samePem(pem, stored.certPem)) return (await CertificateAuthority.open(dir, { trustDomain })).ca;
      // This server was down while a CA rotation retired the CA it kept: it takes the new one.
      if (!state.retired || !samePem(pem, state.retired.certPem)) throw mismatch(dir, pem, stored.certPem);
      log('info', `the cluster CA in ${dir} (SHA-256 ${fingerprint(pem)}…) was retired by a CA rotation: took the store's (SHA-256 ${fingerprint(stored.certPem)}…)`);
      return replaceCaDir(dir, stored);
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

/** Put the CA `rec` in DIR in place of the one there (made beside it, then renamed over it: a crash leaves one or the other, or none, which the next start takes from the store). */
async function replaceCaDir(dir: string, rec: ClusterCaRecord): Promise<CertificateAuthority> {
  const tag = randomBytes(4).toString('hex');
  const fresh = `${dir}.new-${tag}`;
  const old = `${dir}.old-${tag}`;
  try {
    await CertificateAuthority.import(fresh, { trustDomain: rec.trustDomain, certPem: rec.certPem, keyPem: rec.keyPem });
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(fresh, dir);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
  return CertificateAuthority.load(dir);
}

// ---- CA rotation (docs/mesh.md "CA rotation") ----

export type CaLog = (level: 'info' | 'warn', msg: string) => void;

/** The store calls a rotation's steps make (the leader passes its gated store). */
export type RotationStore = Pick<Store, 'startCaRotation' | 'setCaRotationPhase' | 'finishCaRotation'>;

/**
 * The cluster's CAs as the store says: the current one, the new one of a rotation in progress
 * and its phase. Every server keeps one and `refresh`es it from the store (a rotation is
 * moved on by the leader, possibly another server); on a change it rewrites DATA/ca (a retired
 * CA is replaced by the new one) and DATA/ca.pem (the bundle), then tells its listeners, which
 * re-issue the server's certificate and give the TLS port, the forwarder and the node registry
 * the new CA and bundle. The phase logic itself is src/mesh rotationStep.
 */
export class ClusterAuthority {
  private current: CertificateAuthority;
  private next: CertificateAuthority | null = null;
  private state: ClusterCaState;
  private trust: TrustBundle;
  private readonly listeners: Array<() => void> = [];
  private refreshing: Promise<boolean> = Promise.resolve(false);

  private constructor(
    private readonly store: Store,
    private readonly dir: string,
    private readonly pemFile: string,
    private readonly log: CaLog,
    ca: CertificateAuthority,
    state: ClusterCaState,
  ) {
    this.current = ca;
    this.state = state;
    this.trust = new TrustBundle([ca.certPem]);
  }

  /** The cluster CA (openClusterCa) and the rotation in progress, if any; the bundle written to `pemFile`. */
  static async open(store: Store, dir: string, pemFile: string, trustDomain: string, log: CaLog): Promise<ClusterAuthority> {
    const ca = await openClusterCa(store, dir, trustDomain, log);
    const state = (await store.getClusterCaState())!;
    const a = new ClusterAuthority(store, dir, pemFile, log, ca, { ...state, rotation: null });
    await a.apply(state);
    writePrivateFile(pemFile, a.bundlePem, 0o644);
    return a;
  }

  get trustDomain(): string {
    return this.current.trustDomain;
  }

  /** The rotation in progress, if any. */
  get rotation(): CaRotationRecord | null {
    return this.state.rotation;
  }

  /** The CA that issues certificates now: the new one from the issue phase on. */
  get signer(): CertificateAuthority {
    return this.state.rotation?.phase === 'issue' && this.next ? this.next : this.current;
  }

  /** The CAs to trust now: the current one, and the new one during a rotation. */
  get bundle(): TrustBundle {
    return this.trust;
  }

  get bundlePem(): string {
    return this.trust.pem.join('\n') + '\n';
  }

  /** Called after every change (a new phase, a new CA). */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Read the store again and take what changed (one refresh at a time). True when something did. */
  refresh(): Promise<boolean> {
    const run = this.refreshing.then(async () => {
      const state = await this.store.getClusterCaState();
      return state ? this.apply(state) : false;
    });
    this.refreshing = run.catch(() => false);
    return run;
  }

  private async apply(state: ClusterCaState): Promise<boolean> {
    const was = this.state;
    let changed = false;
    if (!samePem(state.ca.certPem, this.current.certPem)) {
      // A rotation ended (here or on another server): the new CA is the cluster's.
      this.current = await replaceCaDir(this.dir, state.ca);
      this.next = null;
      changed = true;
      this.log('info', `the cluster CA is now SHA-256 ${fingerprint(state.ca.certPem)}…: the old one (SHA-256 ${fingerprint(state.retired?.certPem ?? '')}…) is retired, certificates from it are refused`);
    }
    const r = state.rotation;
    if (r && (!this.next || !samePem(this.next.certPem, r.certPem))) {
      this.next = await CertificateAuthority.fromPem({ trustDomain: state.ca.trustDomain, certPem: r.certPem, keyPem: r.keyPem });
      changed = true;
      this.log('info', `CA rotation: the new CA (SHA-256 ${fingerprint(r.certPem)}…) is trusted beside the old one`);
    } else if (!r && this.next) {
      this.next = null;
      changed = true;
    }
    if ((r?.phase ?? null) !== (was.rotation?.phase ?? null)) {
      changed = true;
      if (r?.phase === 'issue') this.log('info', `CA rotation: certificates are issued by the new CA (SHA-256 ${fingerprint(r.certPem)}…) now; nodes renew theirs`);
    }
    this.state = state;
    if (!changed) return false;
    this.trust = new TrustBundle(this.next ? [this.current.certPem, this.next.certPem] : [this.current.certPem]);
    writePrivateFile(this.pemFile, this.bundlePem, 0o644);
    for (const fn of this.listeners) fn();
    return true;
  }

  /** `warren ca rotate`: a new CA, trusted beside the current one; it issues from `trustForMs` on at the earliest. */
  async rotate(store: RotationStore, trustForMs = 0): Promise<void> {
    await this.refresh();
    if (this.state.rotation) throw rotationInProgress(this.state.rotation);
    const td = this.current.trustDomain;
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const { ca, keyPem } = await CertificateAuthority.generate({ trustDomain: td, name: `CN=Warren CA ${td} ${stamp}, O=Warren` });
    const now = Date.now();
    if (!(await store.startCaRotation({ certPem: ca.certPem, keyPem }, now, now + Math.max(0, trustForMs)))) {
      await this.refresh();
      throw rotationInProgress(this.state.rotation);
    }
    await this.refresh();
  }

  /** The leader's step: move the rotation on when rotationStep says so (the writes are conditional: a stale view changes nothing). */
  async advance(store: RotationStore, nodes: RotationNode[], now = Date.now()): Promise<void> {
    const r = this.state.rotation;
    if (!r || !this.next) return;
    const step = rotationStep(this.rotationState(r), nodes, now);
    if (step.action === 'issue') await store.setCaRotationPhase(r.certPem, 'trust', 'issue', now);
    else if (step.action === 'retire') await store.finishCaRotation(r.certPem, now);
    else return;
    await this.refresh();
  }

  /** `warren ca retire`: end the rotation now. Refused while a node that counts holds a certificate from the old CA, unless `force`. */
  async retire(store: RotationStore, nodes: RotationNode[], force: boolean): Promise<string[]> {
    await this.refresh();
    const r = this.state.rotation;
    if (!r || !this.next) {
      throw new WarrenError('MESH_CA_NO_ROTATION', 'no CA rotation is in progress: there is no old CA to retire', { hint: 'start one with `warren ca rotate`; `warren ca status` shows the CAs' });
    }
    const holding = nodesNotOn(this.next.fingerprint, nodes);
    if (holding.length && !force) {
      throw new WarrenError('MESH_CA_RETIRE_REFUSED', `the old CA cannot be retired yet: ${holding.length === 1 ? 'node' : 'nodes'} ${holding.join(', ')} ${holding.length === 1 ? 'holds' : 'hold'} a certificate from it and would be locked out`, {
        hint: 'wait: the rotation retires the old CA by itself once every node presents a certificate from the new one (`warren ca status`); or `warren ca retire --force`, after which those nodes must join again with a token',
        details: { nodes: holding },
      });
    }
    await store.finishCaRotation(r.certPem, Date.now());
    await this.refresh();
    return holding;
  }

  private rotationState(r: CaRotationRecord): RotationState {
    return { phase: r.phase, oldCa: this.current.fingerprint, newCa: this.next!.fingerprint, issueAfter: r.issueAfter };
  }

  /** `warren ca status`, with what the leader knows of the nodes. */
  status(nodes: RotationNode[], now = Date.now()): CaStatusView {
    const r = this.state.rotation;
    const view = (ca: CertificateAuthority, role: CaView['role']): CaView => {
      const c = ca.certificate;
      return { fingerprint: ca.fingerprint, subject: c.subject.replace(/\n/g, ', '), notBefore: Date.parse(c.validFrom), notAfter: Date.parse(c.validTo), role, signing: this.signer === ca };
    };
    const cas = this.next ? [view(this.current, 'old'), view(this.next, 'new')] : [view(this.current, 'active')];
    const roleOf = (fp: string | null): CaNodeView['ca'] => (fp === null ? 'unknown' : (cas.find((c) => c.fingerprint === fp)?.role ?? 'untrusted'));
    const step = r && this.next ? rotationStep(this.rotationState(r), nodes, now) : null;
    return {
      trustDomain: this.current.trustDomain,
      phase: r?.phase ?? 'none',
      startedAt: r?.startedAt ?? null,
      phaseChangedAt: r?.phaseChangedAt ?? null,
      issueAfter: r?.issueAfter ?? null,
      cas,
      nodes: nodes.map((n) => ({ name: n.name, state: n.state, ca: roleOf(n.certCa), trustsNew: this.next && n.trusts ? n.trusts.includes(this.next.fingerprint) : null })).sort((a, b) => a.name.localeCompare(b.name)),
      waitingFor: step?.waitingFor ?? [],
      next: step ? step.why : 'no rotation in progress (`warren ca rotate` starts one)',
      lastRetiredAt: this.state.retired?.retiredAt ?? null,
      bundlePem: this.bundlePem,
    };
  }
}

function rotationInProgress(r: CaRotationRecord | null): WarrenError {
  return new WarrenError('MESH_CA_ROTATION_IN_PROGRESS', `a CA rotation is already in progress (started ${r ? new Date(r.startedAt).toISOString() : 'just now'}, phase ${r?.phase ?? 'trust'})`, {
    hint: 'let it finish (`warren ca status` shows what it waits for), or end it with `warren ca retire`; then rotate again',
    details: r ? { phase: r.phase, startedAt: r.startedAt } : {},
  });
}
