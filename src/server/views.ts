// How runs are seen through the client API: summaries, details (with why jobs wait), the
// stream of a run nobody here drives (followed through the store), and the checks of a logs
// request. Shared by the embedded client and the server.

import { WarrenError, didYouMean } from '../common/index.js';
import { explainWaiting, type NodeCounts, type UnitSnapshot } from '../engine/index.js';
import type { Workflow } from '../workflow/index.js';
import type { Store, WorkflowRecord } from '../store/index.js';
import type { AuditEntry, AuditRequest, JobCounts, ListRequest, LogsRequest, ServiceView, StreamItem, WorkflowDetail, WorkflowSummary } from '../api/index.js';
import { declaredPorts, describeProbe, endpointUrl, type NodeInfo } from '../agent/index.js';
import type { AttemptRecord } from '../store/index.js';

/** Who asks (a user sees only their own workflows; an admin sees all). */
export interface Viewer {
  user: string;
  admin: boolean;
}

/** A workflow the viewer may see, by id or prefix; another user's is "not found", never "forbidden". */
export async function visibleWorkflow(store: Store, v: Viewer, id: string): Promise<WorkflowRecord> {
  const rec = await store.getWorkflow(id, v.admin ? {} : { owner: v.user });
  if (!rec) throw new WarrenError('RUN_NOT_FOUND', `no workflow "${id}"`, { hint: 'see `warren list` for the ids of your workflows' });
  return rec;
}

/** The viewer's workflows (`all`: everyone's, for an admin), newest first. */
export async function visibleWorkflows(store: Store, v: Viewer, req: ListRequest): Promise<WorkflowSummary[]> {
  const all = req.all === true && v.admin;
  const rows = await store.listWorkflows({ limit: req.limit ?? 20, ...(req.status ? { status: req.status } : {}), ...(all ? {} : { owner: v.user }) });
  return rows.map((r) => summaryOf(r));
}

export function summaryOf(r: WorkflowRecord, units?: UnitSnapshot[]): WorkflowSummary {
  const counts: Record<string, number> = {};
  if (units) for (const u of units) counts[u.state] = (counts[u.state] ?? 0) + 1;
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    owner: r.owner ?? null,
    file: r.file,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    cancelRequested: r.cancelRequested,
    counts,
    driver: r.lease ? { owner: r.lease.owner, expiresAt: r.lease.expiresAt } : null,
  };
}

/** The whole of a workflow: units, attempts, events, why its jobs wait, and its services.
 *  `cluster`: services run on nodes, reached at their nodes' addresses (else on this machine). */
export async function detailOf(store: Store, rec: WorkflowRecord, o: { cores: number; explain: boolean; extraWaiting?: Map<string, string>; cluster?: boolean }): Promise<WorkflowDetail> {
  const units = await store.units(rec.id);
  const attempts = await store.attempts(rec.id);
  const events = await store.events(rec.id);
  const waiting = rec.status === 'running' && o.explain ? explainWaiting(rec.spec, withStandIns(rec.spec, units), { cores: o.cores }) : new Map<string, string>();
  if (o.extraWaiting) for (const [job, why] of o.extraWaiting) waiting.set(job, waiting.has(job) ? `${waiting.get(job)}; ${why}` : why);
  return {
    ...summaryOf(rec, units),
    units,
    attempts: attempts.map((a) => ({ key: a.key, attempt: a.attempt, attemptId: a.attemptId, node: a.node, startedAt: a.startedAt, endedAt: a.endedAt, exitCode: a.exitCode, signal: a.signal, reason: a.reason, message: a.message })),
    events: events.map((e) => ({ at: e.at, key: e.key, level: e.level, message: e.message })),
    waiting: Object.fromEntries(waiting),
    spec: rec.spec,
    runDir: rec.runDir,
    options: rec.options,
    services: await servicesOf(store, rec.spec, units, attempts, o.cluster === true),
  };
}

/** The running service attempt a port forward goes to: its attempt id and node. The workflow
 *  must have the service, it must be running, and the port must be one it declares. */
export async function serviceTarget(store: Store, rec: WorkflowRecord, service: string, port: number): Promise<{ attemptId: string; node: string | null }> {
  const units = await store.units(rec.id);
  const u = checkServiceForward(rec.id, rec.spec, rec.status, units, service, port);
  const a = (await store.attempts(rec.id)).filter((x) => x.key === u.key && x.attempt === u.attempt && x.endedAt === null).pop();
  return { attemptId: a?.attemptId ?? `${rec.id}/${u.key}/${u.attempt}`, node: a?.node ?? null };
}

/** Can a port forward reach `port` of `service` now? Its unit, or SERVICE_UNKNOWN / SERVICE_PORT_UNDECLARED / SERVICE_NOT_RUNNING. */
export function checkServiceForward(id: string, wf: Workflow, status: string, units: UnitSnapshot[], service: string, port: number): UnitSnapshot {
  const rec = { id, spec: wf, status };
  const spec = rec.spec.jobs[service];
  if (!spec?.service) {
    const names = Object.values(rec.spec.jobs).filter((j) => j.service).map((j) => j.name);
    const best = didYouMean(service, names);
    throw new WarrenError('SERVICE_UNKNOWN', `workflow ${rec.id} has no service "${service}"${spec ? ' (it is a job)' : ''}`, {
      hint: best !== undefined ? `did you mean "${best}"?` : names.length ? `its services: ${names.join(', ')}` : 'it has no services: port forwarding reaches the services of a workflow',
    });
  }
  const ports = declaredPorts(spec);
  if (!ports.includes(port)) {
    throw new WarrenError('SERVICE_PORT_UNDECLARED', `service ${service} does not declare port ${port}${ports.length ? ` (its ports: ${ports.join(', ')})` : ' (it declares no ports)'}`, {
      hint: ports.length ? `forward one of its ports, e.g. \`warren port-forward ${rec.id} ${service} ${ports[0]}\`` : 'declare the port under network.ports of the service',
    });
  }
  const u = units.find((x) => x.job === service && x.kind === 'job');
  const state = u?.state ?? 'pending';
  if (state !== 'running' || (rec.status !== 'running' && rec.status !== 'pending')) {
    throw new WarrenError('SERVICE_NOT_RUNNING', `service ${service} of workflow ${rec.id} is not running (it is ${state === 'ready' ? 'waiting to start' : state}${rec.status !== 'running' && rec.status !== 'pending' ? `; the workflow ${rec.status}` : ''})`, {
      hint: rec.status === 'running' || rec.status === 'pending' ? `wait until it runs: \`warren status ${rec.id}\` shows it` : `start it again: \`warren resume ${rec.id}\`, or run the workflow again`,
    });
  }
  return u!;
}

/** Each service of a workflow: its state (starting until its probe passed), node, address, ports and endpoints. */
export async function servicesOf(store: Store, wf: Workflow, units: UnitSnapshot[], attempts: AttemptRecord[], cluster: boolean): Promise<ServiceView[]> {
  const specs = Object.values(wf.jobs).filter((j) => j.service);
  if (specs.length === 0) return [];
  let infos: Map<string, NodeInfo> | null = null;
  const out: ServiceView[] = [];
  for (const j of specs) {
    const u = units.find((x) => x.job === j.name && x.kind === 'job');
    const state: ServiceView['state'] =
      !u || u.state === 'pending' || u.state === 'ready' ? 'pending' : u.state === 'starting' ? 'starting' : u.state === 'running' ? (u.reason === 'ready' ? 'ready' : 'starting') : u.state;
    const live = u && (u.state === 'running' || u.state === 'starting') ? attempts.filter((a) => a.key === u.key && a.attempt === u.attempt && a.endedAt === null).pop() : undefined;
    const node = live?.node ?? null;
    let host: string | null = null;
    if (u?.state === 'running') {
      if (!cluster) host = '127.0.0.1';
      else if (node) {
        infos ??= new Map((await store.listNodes()).map((n) => [n.name, n.info as unknown as NodeInfo]));
        host = infos.get(node)?.addresses?.[0] ?? node;
      }
    }
    const s = j.serviceSpec;
    out.push({
      name: j.name,
      state,
      node,
      host,
      persist: s?.persist === true || !Object.values(wf.jobs).some((x) => !x.service),
      probe: s?.probe ? describeProbe(s.probe) : null,
      ports: (s?.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
      endpoints: (s?.endpoints ?? []).map((e) => ({
        name: e.name,
        port: s!.ports.find((p) => p.name === e.portName)?.port ?? null,
        protocol: e.protocol,
        type: e.type,
        url: host !== null ? (endpointUrl(j.name, s!, e, host) ?? null) : null,
      })),
    });
  }
  return out;
}

/** Job units per end state (tasks that never started included), from the engine's counts. */
export function jobCounts(counts: NodeCounts[]): JobCounts {
  const jobs = counts.filter((c) => c.kind === 'job');
  const count = (s: keyof JobCounts) => jobs.reduce((n, c) => n + (c.counts as Record<string, number>)[s]!, 0);
  return { succeeded: count('succeeded'), failed: count('failed'), skipped: count('skipped'), canceled: count('canceled') };
}

/** A task array's tasks that never started have no row: one stand-in per array for the explanation. */
export function withStandIns(wf: Workflow, units: UnitSnapshot[]): UnitSnapshot[] {
  const rows = new Map<string, number>();
  for (const u of units) if (u.task !== null) rows.set(u.job, (rows.get(u.job) ?? 0) + 1);
  const out = [...units];
  for (const j of Object.values(wf.jobs)) {
    if (!j.taskArray) continue;
    const n = j.taskArray.end - j.taskArray.start + 1 - (rows.get(j.name) ?? 0);
    if (n > 0) out.push({ key: `${j.name}[?]`, kind: 'job', job: j.name, task: -1, state: 'pending', attempt: 0, exitCode: null, reason: null, message: null, startedAt: null, endedAt: null });
  }
  return out;
}

/** RUN_UNKNOWN_JOB / RUN_TASK_NEEDED / RUN_UNKNOWN_TASK for a logs request. */
export function checkLogTarget(rec: { id: string; spec: Workflow }, req: LogsRequest): void {
  const spec = rec.spec.jobs[req.job];
  if (!spec) {
    const names = Object.keys(rec.spec.jobs);
    throw new WarrenError('RUN_UNKNOWN_JOB', `workflow ${rec.id} has no job "${req.job}"`, { hint: jobHint(req.job, names) });
  }
  const task = req.task ?? null;
  if (spec.taskArray && task === null) {
    throw new WarrenError('RUN_TASK_NEEDED', `job "${req.job}" is a task array`, {
      hint: `name a task: \`warren logs ${rec.id} ${req.job}:${spec.taskArray.start}\` (tasks ${spec.taskArray.start}..${spec.taskArray.end})`,
    });
  }
  const ta = spec.taskArray;
  if (task !== null && (!ta || task < ta.start || task > ta.end)) {
    throw new WarrenError('RUN_UNKNOWN_TASK', `job "${req.job}" has no task ${task}`, { hint: ta ? `its tasks are ${ta.start}..${ta.end}` : `it is not a task array: \`warren logs ${rec.id} ${req.job}\`` });
  }
}

function jobHint(job: string, names: string[]): string {
  const best = didYouMean(job, names);
  if (best !== undefined) return `did you mean "${best}"?`;
  return `its jobs: ${names.slice(0, 8).join(', ')}${names.length > 8 ? `, … (${names.length} in all; see \`warren status ID\`)` : ''}`;
}

/** Follow a run another process drives, through the store: unit changes, then its end. */
export async function* followStore(store: Store, id: string, signal?: AbortSignal): AsyncIterable<StreamItem> {
  const seen = new Map<string, string>();
  let seq = 0;
  let lastEventAt = 0;
  for (;;) {
    const rec = await store.getWorkflow(id);
    if (!rec) return;
    for (const u of await store.units(id)) {
      const sig = `${u.state}:${u.attempt}:${u.endedAt}`;
      if (seen.get(u.key) === sig) continue;
      seen.set(u.key, sig);
      yield { type: 'unit', seq: ++seq, unit: u };
    }
    for (const e of await store.events(id, { afterAt: lastEventAt })) {
      lastEventAt = Math.max(lastEventAt, e.at);
      yield { type: 'event', seq: ++seq, event: { at: e.at, key: e.key, level: e.level, message: e.message } };
    }
    if (rec.status !== 'running' && rec.status !== 'pending') {
      yield { type: 'done', seq: ++seq, status: rec.status };
      return;
    }
    if (signal?.aborted) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The audit log as an admin reads it (`warren audit list`), oldest first. */
export async function listAudit(store: Store, p: Viewer, q: AuditRequest): Promise<AuditEntry[]> {
  if (!p.admin) throw new WarrenError('AUTH_FORBIDDEN', 'reading the audit log needs an admin', { hint: 'ask a cluster admin (`warren user add NAME --admin` makes one)' });
  if (q.since !== undefined && q.until !== undefined && q.until < q.since) {
    throw new WarrenError('API_BAD_REQUEST', `the audit query ends (${new Date(q.until).toISOString()}) before it starts (${new Date(q.since).toISOString()})`, { hint: 'give --since a time before --until' });
  }
  const rows = await store.listAudit({
    ...(q.since !== undefined ? { since: q.since } : {}),
    ...(q.until !== undefined ? { until: q.until } : {}),
    ...(q.user !== undefined ? { actor: q.user } : {}),
    ...(q.action !== undefined ? { action: q.action } : {}),
    ...(q.afterId !== undefined ? { afterId: q.afterId } : {}),
    limit: q.limit ?? 1000,
  });
  return rows.map((r) => ({ ...r }));
}
