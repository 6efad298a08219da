// The embedded client: the client API served in the CLI's own process, on the embedded
// default (SQLite under $WARREN_HOME, an in-process orchestrator and local agent). This is
// also where the one-machine platform is composed: store, trust gate, runtimes, data mover.

import { hostname, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { WarrenError, pidAlive, warrenHome, isWarrenError, didYouMean, parseSize } from '../common/index.js';
import { explainWaiting, TERMINAL, type NodeCounts, type UnitSnapshot, type WorkflowStatus } from '../engine/index.js';
import { LocalAgent, discoverNodeGpus, gpusOfJob, logPaths, type Agent } from '../agent/index.js';
import { createProcessRuntime, closeSpawner, type Runtime } from '../runtime/index.js';
import { Orchestrator, PlanPlacement, holderIsGone, RunHub, summaryOf, detailOf, jobCounts, checkLogTarget, followStore, pruneRequest, serviceTarget, type DriveHooks, type RunOptions } from '../server/index.js';
import { parsePlatform } from '../scheduler/index.js';
import { loadWorkflowText, type Workflow } from '../workflow/index.js';
import { openStore, type Store, type WorkflowRecord } from '../store/index.js';
import { addNodes, addProfile, deleteNodes, deleteProfile, listNodeViews, setNodes, setProfile } from '../provision/index.js';
import type { InventoryClient, InventoryNode, InventoryNodeView, NodeChangeRequest, ProfileChangeRequest, ProfileRecord, JobCounts, ListRequest, LogsRequest, NodeImageBuildPending, NodeImageBuildRequest, NodeImageBuildView, NodeImageClient, NodeImageView, PruneRequest, PruneView, StreamItem, SubmitRequest, WarrenClient, WorkflowDetail, WorkflowSummary } from './types.js';

type TrustGate = import('../image/index.js').TrustGate;

/** The gate of a workflow that names no image: nothing to admit. */
const NO_IMAGES_GATE = { requireSigned: false, policy: {}, admit: async <T>(img: T): Promise<T> => img } as unknown as TrustGate;

export interface NodePolicyReader {
  (home: string): { allowSetuid: boolean };
}

export interface EmbeddedOptions {
  /** A SQLite path or postgres:// URL (default $WARREN_STORE, else $WARREN_HOME/warren.db). */
  store?: string;
  /** Cores the local agent may use (default $WARREN_CORES, else all). */
  cores?: number;
  /** The node's policy ($WARREN_HOME/policy.json), read by the CLI. */
  nodePolicy: NodePolicyReader;
  /** How image pulls report progress (none by default). */
  onImageProgress?: (msg: string) => void;
}

interface Drive {
  hub: RunHub;
  orch: Orchestrator;
  done: Promise<WorkflowStatus>;
}

export class EmbeddedClient implements WarrenClient, InventoryClient {
  readonly where: string;
  private readonly drives = new Map<string, Drive>();

  private constructor(
    private readonly store: Store,
    private readonly home: string,
    private readonly o: EmbeddedOptions,
  ) {
    this.where = `this machine (${home})`;
  }

  static async open(o: EmbeddedOptions): Promise<EmbeddedClient> {
    const home = warrenHome();
    const store = await openStore(o.store);
    return new EmbeddedClient(store, home, o);
  }

  /** The store (for the few CLI verbs that are about this machine only). */
  get rawStore(): Store {
    return this.store;
  }

  async submit(req: SubmitRequest): Promise<WorkflowSummary> {
    const wf = req.local?.parsed ?? loadWorkflowText(req.source, req.filename);
    const options: RunOptions = { failFast: req.options?.failFast === true };
    if (req.options?.simulate !== undefined) options.simulate = req.options.simulate;
    const platformFile = req.local?.platformFile;
    const { orch, gate } = platformFile !== undefined ? { orch: await this.composeSites(wf, platformFile, options.simulate ?? 1), gate: null } : await this.compose(wf);
    if (options.simulate === undefined) await this.prepareImages(wf, gate ?? (await this.trustGate(wf)));
    const rec = await orch.accept(wf, { ...options, agentCores: orch.nodeCores });
    await this.start(rec.id, orch);
    return this.summary(rec);
  }

  async resume(id: string): Promise<WorkflowSummary> {
    const rec = await this.mustGet(id);
    if (rec.status === 'succeeded') return this.summary(rec);
    // The stored workflow's own policy applies again, with the node's as it is now. The
    // images are checked again (time of check = time of use): an image swapped since the run
    // (or a policy tightened since) is refused before anything runs again.
    const { orch, gate } = await this.compose(rec.spec);
    await this.prepareImages(rec.spec, gate);
    await this.start(rec.id, orch);
    return this.summary((await this.store.getWorkflow(rec.id))!);
  }

  /** Take the lease and drive the run in this process; its changes go to the run's hub. */
  private async start(id: string, orch: Orchestrator): Promise<void> {
    const hub = new RunHub();
    const hooks: DriveHooks = {
      onUnit: (u) => hub.push({ type: 'unit', unit: u }),
      onEvent: (level, key, message) => hub.push({ type: 'event', event: { at: Date.now(), key, level, message } }),
      onProgress: (key, p) => hub.push({ type: 'progress', key, progress: { ...p } }),
    };
    const running = await orch.begin(id, hooks);
    const done = running.done.then(
      (status) => {
        hub.push({ type: 'done', status, counts: jobCounts(orch.lastCounts) });
        hub.end();
        return status;
      },
      (e: unknown) => {
        const err = isWarrenError(e) ? e : new WarrenError('WARREN_INTERNAL', String((e as Error)?.message ?? e), { cause: e });
        hub.push({ type: 'done', status: 'failed', error: err.toWire(), counts: jobCounts(orch.lastCounts) });
        hub.end();
        throw err;
      },
    );
    done.catch(() => {});
    this.drives.set(running.id, { hub, orch, done });
  }

  async get(id: string): Promise<WorkflowDetail> {
    const rec = await this.mustGet(id);
    const lease = rec.lease;
    const orphaned = (rec.status === 'running' || rec.status === 'pending') && (lease === null || lease.expiresAt <= Date.now() || holderIsGone(lease));
    return detailOf(this.store, rec, { cores: Number(rec.options.agentCores) || availableParallelism(), explain: !orphaned });
  }

  async list(req: ListRequest = {}): Promise<WorkflowSummary[]> {
    const rows = await this.store.listWorkflows({ limit: req.limit ?? 20, ...(req.status ? { status: req.status } : {}) });
    return rows.map((r) => this.summary(r));
  }

  async *stream(id: string, opts: { afterSeq?: number; signal?: AbortSignal } = {}): AsyncIterable<StreamItem> {
    const rec = await this.mustGet(id);
    const d = this.drives.get(rec.id);
    if (d) {
      yield* d.hub.subscribe(opts.afterSeq ?? 0, opts.signal);
      return;
    }
    // Driven by another process: follow the store.
    yield* followStore(this.store, rec.id, opts.signal);
  }

  async *logs(id: string, req: LogsRequest, signal?: AbortSignal): AsyncIterable<Uint8Array> {
    const rec = await this.mustGet(id);
    checkLogTarget(rec, req);
    const task = req.task ?? null;
    const paths = logPaths(rec.runDir, req.job, task);
    const path = req.stream === 'stderr' ? paths.err : paths.out;
    const key = task === null ? req.job : `${req.job}[${task}]`;
    const store = this.store;
    let pos = 0;
    const { createReadStream, existsSync, statSync } = await import('node:fs');
    for (;;) {
      if (existsSync(path) && statSync(path).size > pos) {
        for await (const c of createReadStream(path, { start: pos })) {
          pos += (c as Buffer).length;
          yield c as Buffer;
        }
      }
      if (!req.follow || signal?.aborted) return;
      const u = (await store.units(rec.id)).find((x) => x.key === key);
      const wf = await store.getWorkflow(rec.id);
      if (!u || TERMINAL.has(u.state) || (wf && wf.status !== 'running' && wf.status !== 'pending')) {
        if (existsSync(path) && statSync(path).size > pos) for await (const c of createReadStream(path, { start: pos })) yield c as Buffer;
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async cancel(id: string): Promise<WorkflowSummary> {
    const rec = await this.mustGet(id);
    const d = this.drives.get(rec.id);
    if (d) {
      d.orch.cancel();
      return this.summary(rec);
    }
    if (rec.status !== 'running' && rec.status !== 'pending') {
      throw new WarrenError('RUN_NOT_RUNNING', `workflow ${rec.id} is not running (it ${rec.status === 'canceled' ? 'was canceled' : rec.status})`, {
        hint: rec.status === 'failed' || rec.status === 'canceled' ? `\`warren resume ${rec.id}\` would run it again` : undefined,
      });
    }
    const lease = rec.lease;
    if (lease && lease.expiresAt > Date.now() && !holderIsGone(lease)) {
      // A live runner holds the lease: ask it (it polls the store); on this host a signal makes it react at once.
      await this.store.write({ workflows: [{ id: rec.id, patch: { cancelRequested: true } }] });
      const [host, pid] = lease.owner.split(':');
      if (host === hostname() && Number(pid) > 0 && pidAlive(Number(pid))) {
        try {
          process.kill(Number(pid), 'SIGTERM');
        } catch {
          /* it polls the store too */
        }
      }
    } else {
      // Nobody drives it (its runner died): take the lease, stop what it left running, mark it canceled.
      const { orch } = await this.compose(undefined);
      await orch.cancelAbandoned(rec.id);
    }
    return this.summary((await this.store.getWorkflow(rec.id))!);
  }

  /** A stream to a port of a running service: on this machine, its port is on the host's network. */
  async connect(id: string, service: string, port: number): Promise<import('node:stream').Duplex> {
    const rec = await this.mustGet(id);
    await serviceTarget(this.store, rec, service, port);
    const { connect } = await import('node:net');
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new WarrenError('SERVICE_FORWARD_FAILED', `cannot connect to port ${port} of service ${service}: ${e.code === 'ECONNREFUSED' ? 'connection refused (is it listening on that port?)' : e.message}`, {
            hint: `see its log: \`warren logs ${rec.id} ${service} --err\``,
          }),
        ),
      );
    });
  }

  /** `warren prune` on this machine: the store and $WARREN_HOME/runs/<id> of what it prunes
   *  (never running work: a workflow another `warren run` drives keeps its lease). */
  prune(req: PruneRequest): Promise<PruneView> {
    return pruneRequest(this.store, this.home, req);
  }

  // The provisioning inventory in this machine's store (src/provision/manage.ts).

  inventoryNodes(req: { names?: string; missingOk?: boolean } = {}): Promise<InventoryNodeView[]> {
    return listNodeViews(this.store, req.names, { missingOk: req.missingOk === true });
  }

  addInventoryNodes(req: NodeChangeRequest): Promise<InventoryNode[]> {
    return addNodes(this.store, req);
  }

  setInventoryNodes(req: NodeChangeRequest): Promise<InventoryNode[]> {
    return setNodes(this.store, req);
  }

  deleteInventoryNodes(req: { names: string; missingOk?: boolean }): Promise<{ deleted: string[] }> {
    return deleteNodes(this.store, req.names, { missingOk: req.missingOk === true });
  }

  profiles(): Promise<ProfileRecord[]> {
    return this.store.listProfiles();
  }

  addProfile(req: ProfileChangeRequest): Promise<ProfileRecord> {
    return addProfile(this.store, req);
  }

  setProfile(req: ProfileChangeRequest): Promise<ProfileRecord> {
    return setProfile(this.store, req);
  }

  deleteProfile(name: string): Promise<void> {
    return deleteProfile(this.store, name);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.drives.values()].map((d) => d.done));
    // `warren run` ends after its launcher (warren-spawn), never before.
    await closeSpawner();
    await this.store.close();
  }

  private async mustGet(id: string): Promise<WorkflowRecord> {
    const rec = await this.store.getWorkflow(id);
    if (!rec) throw new WarrenError('RUN_NOT_FOUND', `no workflow "${id}"`, { hint: 'see `warren list` for the ids of recent workflows' });
    return rec;
  }

  private summary(r: WorkflowRecord, units?: UnitSnapshot[]): WorkflowSummary {
    return summaryOf(r, units);
  }

  // --- composition of the one-machine platform ---

  /** The trust gate of this run: the one rule (src/image effectiveTrustPolicy) for the node policy and the workflow's. */
  private async trustGate(wf: Workflow | undefined): Promise<TrustGate> {
    const needsContainers = wf === undefined || Object.values(wf.jobs).some((j) => j.image !== undefined);
    // A workflow without images needs no trust gate: do not load the image subsystem (OpenPGP,
    // the registry client) for it, so a host-only `warren run` starts fast.
    if (!needsContainers) return NO_IMAGES_GATE;
    const { TrustGate, effectiveTrustPolicy, KeyStore } = await import('../image/index.js');
    const policy = effectiveTrustPolicy(this.o.nodePolicy(this.home) as unknown as Parameters<typeof effectiveTrustPolicy>[0], wf?.policy, new KeyStore(join(this.home, 'keys')));
    return new TrustGate(policy, { dir: join(this.home, 'cache', 'trusted-sif') });
  }

  /**
   * Pull (or find) every image the workflow names and check the trust policy, before anything
   * runs (and again at resume). Under a policy the verified copies are what the jobs will run.
   */
  private async prepareImages(wf: Workflow, gate: TrustGate): Promise<void> {
    const uris = [...new Set(Object.values(wf.jobs).flatMap((j) => (j.image ? [j.image.uri] : [])))];
    if (uris.length === 0) return;
    // Binds and overlays name paths of this machine: a missing one fails here, before anything runs.
    const withPaths = Object.values(wf.jobs).filter((j) => j.image?.binds?.length || j.image?.overlays?.length);
    if (withPaths.length) {
      const { checkBindsAndOverlays } = await import('../runtime/container/index.js');
      for (const j of withPaths) {
        try {
          checkBindsAndOverlays(j.image!);
        } catch (e) {
          const err = e as WarrenError;
          err.message = `job ${j.name}: ${err.message}`;
          throw err;
        }
      }
    }
    const { prepareImage } = await import('../image/index.js');
    const allowSetuid = this.o.nodePolicy(this.home).allowSetuid;
    const prepared = new Map<string, { kind: string; path: string }>();
    for (const uri of uris) {
      const img = await prepareImage(uri, { onProgress: undefined, allowSetuid });
      prepared.set(uri, img);
      if (!gate.requireSigned) continue;
      try {
        await gate.admit(img);
      } catch (e) {
        const err = e as WarrenError;
        if (typeof err.message === 'string' && !err.message.includes(uri)) err.message = `${uri}: ${err.message}`;
        throw err;
      }
    }
    await this.checkEncryptedImages(wf, prepared);
  }

  /**
   * Encrypted SIFs, before anything runs: a job without `image.decryptionSecret` is refused
   * (SIF_ENCRYPTED, saying to add it), an undefined secret too (RUN_SECRET_NOT_FOUND), and the
   * key or passphrase must open the image (SIF_DECRYPT_FAILED); nothing is decrypted here.
   */
  private async checkEncryptedImages(wf: Workflow, prepared: Map<string, { kind: string; path: string }>): Promise<void> {
    const m = await import('../image/index.js');
    const encrypted = new Map<string, boolean>();
    const checked = new Set<string>();
    let secrets: ((ref: string) => Record<string, string> | undefined) | undefined;
    for (const j of Object.values(wf.jobs)) {
      const img = j.image ? prepared.get(j.image.uri) : undefined;
      if (!j.image || !img || img.kind !== 'sif') continue;
      let enc = encrypted.get(img.path);
      if (enc === undefined) {
        try {
          enc = m.isSif(img.path) && m.warrenEncrypted(m.readSif(img.path, j.image.uri), j.image.uri);
        } catch (e) {
          // Apptainer's LUKS2: it cannot be opened here, with or without a key; say so before anything runs.
          if (isWarrenError(e) && e.code === 'SIF_ENCRYPTION_UNSUPPORTED') {
            e.message = `${wf.file ?? wf.name}${j.pos ? `:${j.pos.line}:${j.pos.col}` : ''}: job ${j.name}: ${e.message}`;
            throw e;
          }
          enc = false; // not one to open here (ambiguous partitions, no partition): the runtime says why, as before
        }
        encrypted.set(img.path, enc);
      }
      if (!enc) continue;
      const at = `${wf.file ?? wf.name}${j.pos ? `:${j.pos.line}:${j.pos.col}` : ''}: job ${j.name}`;
      const ref = j.image.decryptionSecret;
      if (!ref) {
        throw new WarrenError('SIF_ENCRYPTED', `${at}: image ${j.image.uri} is encrypted, and the job has no image.decryptionSecret to open it`, {
          hint: `add \`decryptionSecret: secret://user/NAME\` under the job's \`image:\`, with the RSA private key or the passphrase in $WARREN_HOME/secrets/NAME.json as {"key": "..."} or {"passphrase": "..."} (docs/encryption.md)`,
        });
      }
      if (checked.has(`${img.path}\0${ref}`)) continue;
      secrets ??= (await import('../data/index.js')).defaultSecretResolver(this.home);
      const s = secrets(ref);
      const value = s?.passphrase || s?.key || s?.privateKey;
      if (!value) {
        throw new WarrenError('RUN_SECRET_NOT_FOUND', `${at}: image decryption secret ${ref} ${s ? 'has no "key" or "passphrase"' : 'is not defined'}`, {
          hint: 'put {"key": "-----BEGIN PRIVATE KEY-----..."} (the RSA private key) or {"passphrase": "..."} in $WARREN_HOME/secrets/NAME.json, or set WARREN_SECRET_NAME_KEY / WARREN_SECRET_NAME_PASSPHRASE (docs/encryption.md)',
        });
      }
      const key = s?.passphrase ? { passphrase: s.passphrase } : m.decryptionKeyFromText(value);
      try {
        await m.checkDecryptionKey(img.path, { ...key, image: j.image.uri });
      } catch (e) {
        if (isWarrenError(e)) e.message = `${at}: ${e.message} (secret ${ref})`;
        throw e;
      }
      checked.add(`${img.path}\0${ref}`);
    }
  }

  /** runc-based container runtime; under a trust policy every launch runs the verified copy (the gate). */
  private async containerRuntime(gate: TrustGate): Promise<Runtime | undefined> {
    const { defaultContainerRuntime } = await import('../runtime/container/index.js');
    const { allowSetuid } = this.o.nodePolicy(this.home);
    if (!gate.requireSigned) return defaultContainerRuntime(this.home, { allowSetuid });
    return defaultContainerRuntime(this.home, { allowSetuid, trust: (img) => gate.admit(img) });
  }

  /** `$WARREN_MEMORY` (a size: 64GiB): the memory the local agent may hand out, over the machine's (as WARREN_CORES for cores). */
  private memory(): number | undefined {
    const v = process.env.WARREN_MEMORY;
    if (v === undefined || v === '') return undefined;
    const n = parseSize(v);
    if (n === undefined || n <= 0) {
      throw new WarrenError('CLI_BAD_OPTION', `WARREN_MEMORY must be a size like 64GiB or 512MB, not "${v}"`, { hint: 'set WARREN_MEMORY to the memory the local agent may use, or unset it for all of this machine\'s' });
    }
    return n;
  }

  private cores(): number | undefined {
    if (this.o.cores !== undefined) return this.o.cores;
    if (process.env.WARREN_CORES) return Number(process.env.WARREN_CORES);
    return undefined;
  }

  /** The local agent of this machine, composed for a workflow (its trust policy, its images). */
  private async localAgent(wf: Workflow | undefined, gate: TrustGate): Promise<LocalAgent> {
    const needsContainers = wf === undefined || Object.values(wf.jobs).some((j) => j.image !== undefined);
    const container = needsContainers ? await this.containerRuntime(gate) : undefined;
    const mover = dataMover(this.home);
    const needsSecrets = wf !== undefined && Object.values(wf.jobs).some((j) => j.image?.secret || j.image?.decryptionSecret);
    const secrets = needsSecrets ? (await import('../data/index.js')).defaultSecretResolver(this.home) : undefined;
    // The GPUs nvidia-smi lists (asked only when a job wants GPUs: or resuming, whose jobs are not known here).
    const needsGpus = wf === undefined || Object.values(wf.jobs).some((j) => gpusOfJob(j) > 0);
    const gpus = needsGpus ? discoverNodeGpus() : [];
    const memoryBytes = this.memory();
    return new LocalAgent({ home: this.home, cores: this.cores(), ...(memoryBytes !== undefined ? { memoryBytes } : {}), process: createProcessRuntime(), container, transfers: mover, gpus, ...(secrets ? { secrets } : {}) });
  }

  /** The orchestrator of this machine for a workflow, and its trust gate (built once: the
   *  container runtime runs under it and the images are checked against it). */
  private async compose(wf: Workflow | undefined): Promise<{ orch: Orchestrator; gate: TrustGate }> {
    const gate = await this.trustGate(wf);
    const agent = await this.localAgent(wf, gate);
    return { orch: new Orchestrator({ store: this.store, agent, home: this.home }), gate };
  }

  /** An orchestrator with one simulated agent per site of a platform, placing jobs by the plan. */
  private async composeSites(wf: Workflow, platformFile: string, factor: number): Promise<Orchestrator> {
    let text: string;
    try {
      text = readFileSync(platformFile, 'utf8');
    } catch (e) {
      throw new WarrenError('PLAN_PLATFORM_NOT_FOUND', `cannot read the platform file ${platformFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
        hint: 'check the path (see examples/platform.yaml and docs/platform.md)',
      });
    }
    const platform = parsePlatform(text, platformFile);
    const estimates: Record<string, number> = {};
    for (const j of Object.values(wf.jobs)) {
      const hist = await this.store.jobHistory(j.name, 5);
      if (hist.length && j.estimateSec === undefined) estimates[j.name] = hist.reduce((a, b) => a + b, 0) / hist.length;
    }
    const placement = new PlanPlacement(wf, platform, { estimates }, Date.now(), factor);
    const agents = new Map<string, Agent>();
    for (const site of Object.keys(platform.sites)) {
      // Simulated jobs sleep: a site's agent admits as many as the site has cores.
      agents.set(site, new LocalAgent({ name: site, home: this.home, cores: Math.max(1, PlanPlacement.siteCores(platform, site)), memoryBytes: Number.MAX_SAFE_INTEGER, process: createProcessRuntime(), transfers: dataMover(this.home) }));
    }
    const plan = placement.current;
    process.stderr.write(`plan: makespan ${plan.makespan.toFixed(0)}s, cost ${plan.cost.toFixed(2)} ${plan.currency}, sites ${[...new Set(plan.jobs.map((j) => j.site))].join(', ')} (replayed at ×${factor})\n`);
    const local = new LocalAgent({ home: this.home, process: createProcessRuntime(), transfers: dataMover(this.home) });
    return new Orchestrator({ store: this.store, agent: local, home: this.home, sites: { agents, placement } });
  }
}

/** The data mover (src/data), loaded on first use: it brings the S3 SDK. */
export function dataMover(home: string): { ingress: import('../data/index.js').IngressFn; egress: import('../data/index.js').EgressFn } {
  let mod: typeof import('../data/index.js') | null = null;
  const load = async () => (mod ??= await import('../data/index.js'));
  return {
    ingress: async (t, root, opts) => (await load()).ingress(t, root, { ...opts, secrets: opts.secrets ?? (await load()).defaultSecretResolver(home) }),
    egress: async (t, root, opts) => (await load()).egress(t, root, { ...opts, secrets: opts.secrets ?? (await load()).defaultSecretResolver(home) }),
  };
}

/** Ask `client` to build until it answers the image (a server's "building" answers are asked again: they join the build). */
export async function untilBuilt(client: NodeImageClient, req: NodeImageBuildRequest, onWait?: (p: NodeImageBuildPending) => void): Promise<NodeImageBuildView> {
  for (;;) {
    const r = await client.nodeImageBuild(req);
    if (!('building' in r)) return r;
    onWait?.(r);
  }
}
