// `warren run|resume|list|status|logs|cancel`: the workflow verbs. They parse and render;
// everything goes through the client API (src/api): embedded on this machine by default,
// or a Warren server through a context (`warren context add|use`).

import type { Command } from 'commander';
import { join } from 'node:path';
import { EXIT, WarrenError, warrenHome } from '../../common/index.js';
import type { UnitSnapshot, WorkflowStatus } from '../../engine/index.js';
import { describeOwner, holderIsGone } from '../../server/index.js';
import { loadWorkflowFile, readStorageClasses, readWorkflowText, workflowAnnotations, type Workflow } from '../../workflow/index.js';
import type { JobCounts, ServiceView, StreamItem, WarrenClient, WorkflowDetail } from '../../api/index.js';
import { RunView } from '../view.js';
import { openClient, addTargetOptions, type TargetOpts } from '../client.js';
import { secretExists } from '../../data/index.js';

interface CommonOpts extends TargetOpts {
  store?: string;
  cores?: string;
  json?: boolean;
}

/** The node's policy ($WARREN_HOME/policy.json): see ../policy.ts. */
export { nodePolicy } from '../policy.js';

/** Units in the workflow's order (jobs as in the file, tasks by index): rows of array tasks
 *  are written as the tasks start, so the store's order is not the file's. */
function inFileOrder(wf: Workflow, units: UnitSnapshot[]): UnitSnapshot[] {
  const rank = new Map<string, number>();
  let i = 0;
  for (const v of Object.values(wf.volumes)) rank.set(`ingress:${v.name}`, i++);
  for (const j of Object.keys(wf.jobs)) rank.set(`job:${j}`, i++);
  rank.set('egress:@egress', i++);
  const r = (u: UnitSnapshot) => rank.get(`${u.kind}:${u.job}`) ?? i;
  return [...units].sort((a, b) => r(a) - r(b) || (a.task ?? 0) - (b.task ?? 0));
}

/** Tasks of each task array that have no row (never started): job name -> count. */
function notStarted(wf: Workflow, units: UnitSnapshot[]): Map<string, number> {
  const rows = new Map<string, number>();
  for (const u of units) if (u.task !== null) rows.set(u.job, (rows.get(u.job) ?? 0) + 1);
  const out = new Map<string, number>();
  for (const j of Object.values(wf.jobs)) {
    if (!j.taskArray) continue;
    const n = j.taskArray.end - j.taskArray.start + 1 - (rows.get(j.name) ?? 0);
    if (n > 0) out.set(j.name, n);
  }
  return out;
}

function resultJson(rec: { id: string; spec: Workflow; services?: ServiceView[] }, status: WorkflowStatus, units0: UnitSnapshot[], attemptsPer: Map<string, number>): string {
  const units = inFileOrder(rec.spec, units0);
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const notes = workflowAnnotations(rec.spec);
  return JSON.stringify({
    ...(rec.services?.length ? { services: rec.services } : {}),
    ...(notes.length ? { annotations: notes.map(({ where, key, value, actedOn }) => ({ where, key, value, actedOn })) } : {}),
    id: rec.id,
    status,
    jobs: units
      .filter((u) => u.kind === 'job')
      .map((u) => ({
        name: u.job,
        task: u.task,
        status: u.state,
        exitCode: u.exitCode,
        attempts: attemptsPer.get(u.key) ?? u.attempt,
        startedAt: iso(u.startedAt),
        endedAt: iso(u.endedAt),
      })),
  });
}

const exitFor = (s: WorkflowStatus): number => (s === 'succeeded' ? EXIT.ok : s === 'canceled' ? EXIT.canceled : EXIT.failed);

/** Follow a run live (the view, Ctrl-C handling) and print the final report. */
async function followRun(client: WarrenClient, embedded: boolean, id: string, json: boolean): Promise<number> {
  const d = await client.get(id);
  const live = !json && process.stderr.isTTY === true && process.env.TERM !== 'dumb';
  const view = new RunView(process.stderr, live, json);
  view.start(d.id, embedded ? d.runDir : '', d.units, d.spec);
  const ac = new AbortController();
  let interrupts = 0;
  let detached = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts++;
    const what = sig === 'SIGINT' ? 'Ctrl-C' : sig;
    if (!embedded) {
      // On a server the run goes on: stop following and say how to come back.
      detached = true;
      process.stderr.write(`\n${what}: stopped following workflow ${id}; it goes on on the server.\n  reattach: \`warren status ${id}\`, \`warren logs -f ${id} JOB\`; stop it: \`warren cancel ${id}\`\n`);
      ac.abort();
      return;
    }
    if (interrupts === 1) {
      process.stderr.write(`\n${what}: canceling workflow ${id} (again to force quit; \`warren resume ${id}\` continues it)\n`);
      client.cancel(id).catch(() => {});
    } else {
      process.exit(EXIT.canceled);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let done: Extract<StreamItem, { type: 'done' }> | null = null;
  try {
    for await (const it of client.stream(id, { signal: ac.signal })) {
      if (it.type === 'unit') view.unit(it.unit);
      else if (it.type === 'event') view.event(it.event.level, it.event.message);
      else if (it.type === 'progress') view.transfer(it.key, Number(it.progress.bytes ?? 0), it.progress.totalBytes as number | undefined);
      else done = it;
    }
  } finally {
    view.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (detached || !done) return detached ? EXIT.canceled : EXIT.failed;
  if (done.error) throw WarrenError.fromWire(done.error);
  const status = done.status;
  if (json) {
    const fin = await client.get(id);
    process.stdout.write(resultJson(fin, status, fin.units, new Map()) + '\n');
  } else {
    const c: JobCounts = done.counts ?? (await countsOf(client, id));
    const parts = (['succeeded', 'failed', 'skipped', 'canceled'] as const).map((s) => [s, c[s]] as const).filter(([, n]) => n > 0);
    process.stderr.write(`workflow ${id} ${status}: ${parts.map(([s, n]) => `${n} ${s}`).join(', ')}\n`);
    if (status === 'failed') process.stderr.write(`  hint: see the logs with \`warren logs ${id} JOB\`; fix the cause, then \`warren resume ${id}\` re-runs only what did not succeed\n`);
  }
  return exitFor(status);
}

async function countsOf(client: WarrenClient, id: string): Promise<JobCounts> {
  const d = await client.get(id);
  const c: JobCounts = { succeeded: 0, failed: 0, skipped: 0, canceled: 0 };
  for (const u of d.units) if (u.kind === 'job' && u.state in c) c[u.state as keyof JobCounts]++;
  return c;
}

function parseCores(o: CommonOpts): number | undefined {
  if (o.cores === undefined) return undefined;
  const cores = Number(o.cores);
  if (!Number.isInteger(cores) || cores < 1) throw new WarrenError('CLI_BAD_OPTION', `--cores must be a whole number >= 1, not "${o.cores}"`);
  return cores;
}

export function register(program: Command): void {
  const common = (c: Command) =>
    addTargetOptions(c.option('--store <url>', 'store: a SQLite path or postgres:// URL (default $WARREN_HOME/warren.db)').option('--cores <n>', 'cores the local agent may use (default: all)'));

  common(
    program
      .command('run')
      .description('validate and run a workflow (on this machine, or on the server of the current context)')
      .argument('<file>', 'workflow file (Fuzzfile YAML v1/v4, or WfFormat JSON)')
      .option('--json', 'print one JSON result object at the end, and nothing else on stdout')
      .option('--fail-fast', 'start nothing new after the first failure')
      .option('--detach', 'with a server: submit, print the id, and do not follow')
      .option('--simulate [factor]', 'replace every command by a sleep of its estimate × factor (default 1)')
      .option('--platform <file>', 'with --simulate: replay the workflow across the sites of a platform file, placed (and re-placed) by the planner'),
  ).action(async (file: string, o: CommonOpts & { failFast?: boolean; simulate?: string | boolean; platform?: string; detach?: boolean }) => {
    // Validated here first: errors point at the file as the user named it.
    const wf: Workflow = loadWorkflowFile(file, { storageClasses: readStorageClasses(warrenHome()) });
    let simulate: number | undefined;
    if (o.simulate !== undefined) {
      const f = o.simulate === true ? 1 : Number(o.simulate);
      if (!Number.isFinite(f) || f < 0) throw new WarrenError('CLI_BAD_OPTION', `--simulate takes a factor >= 0, not "${o.simulate}"`);
      simulate = f;
    }
    if (o.platform !== undefined && simulate === undefined) {
      throw new WarrenError('CLI_BAD_OPTION', '--platform runs across sites, which needs site agents (cluster mode); on one machine it replays the plan', {
        hint: 'add --simulate [factor] to replay the workflow across the platform\'s sites here, or use `warren plan FILE --platform P.yaml` to see the plan',
      });
    }
    const { client, embedded } = await openClient(o, { cores: parseCores(o) });
    try {
      if (o.platform !== undefined && !embedded) {
        throw new WarrenError('CLI_BAD_OPTION', `--platform --simulate replays a plan across sites on this machine, and the current context is the server ${client.where}`, {
          hint: 'add --local to replay it here; on a cluster, its sites are the server\'s (`warren site list`)',
        });
      }
      if (o.detach && embedded) {
        throw new WarrenError('CLI_BAD_OPTION', '--detach needs a server: on this machine the run lives in this process', {
          hint: 'run it in the background (`nohup warren run FILE &`), or add a server context: `warren context add NAME --server URL --token T`',
        });
      }
      // On this machine the secrets are this machine's: an image.decryptionSecret naming none is
      // an error at its place in the file (a server resolves secrets on its nodes).
      const parsed = embedded && simulate === undefined && Object.values(wf.jobs).some((j) => j.image?.decryptionSecret)
        ? loadWorkflowFile(file, { storageClasses: readStorageClasses(warrenHome()), secretExists: secretExists(warrenHome()) })
        : wf;
      const sum = await client.submit({
        source: readWorkflowText(file),
        filename: file,
        options: { failFast: o.failFast === true, ...(simulate !== undefined ? { simulate } : {}) },
        local: { parsed, ...(o.platform !== undefined ? { platformFile: o.platform } : {}) },
      });
      if (o.detach) {
        if (o.json) process.stdout.write(JSON.stringify({ id: sum.id, status: sum.status }) + '\n');
        else process.stdout.write(`${sum.id}\n`);
        process.stderr.write(`submitted workflow ${sum.id} to ${client.where}: \`warren status ${sum.id}\` shows it\n`);
        return;
      }
      process.exitCode = await followRun(client, embedded, sum.id, o.json === true);
    } finally {
      await client.close();
    }
  });

  common(
    program
      .command('resume')
      .description('continue a workflow that was interrupted or failed, re-running only what did not succeed')
      .argument('<id>', 'workflow id (or a unique prefix)')
      .option('--json', 'print one JSON result object at the end'),
  ).action(async (id: string, o: CommonOpts) => {
    const { client, embedded } = await openClient(o, { cores: parseCores(o) });
    try {
      const sum = await client.resume(id);
      if (sum.status === 'succeeded') {
        process.stderr.write(`workflow ${sum.id} already succeeded; nothing to do\n`);
        return;
      }
      process.exitCode = await followRun(client, embedded, sum.id, o.json === true);
    } finally {
      await client.close();
    }
  });

  addTargetOptions(
    program
      .command('list')
      .description('list recent workflows')
      .option('--store <url>', 'store URL')
      .option('--json', 'JSON output')
      .option('--all', 'with a server, as an admin: every user\'s workflows')
      .option('--limit <n>', 'how many', '20'),
  ).action(async (o: CommonOpts & { limit: string; all?: boolean }) => {
    const { client } = await openClient(o);
    try {
      const rows = await client.list({ limit: Number(o.limit) || 20, ...(o.all ? { all: true } : {}) });
      if (o.json) {
        process.stdout.write(JSON.stringify(rows.map((r) => ({ id: r.id, name: r.name, status: r.status, file: r.file, createdAt: new Date(r.createdAt).toISOString(), ...(r.owner ? { owner: r.owner } : {}) }))) + '\n');
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('no workflows yet: start one with `warren run FILE`\n');
        return;
      }
      const owners = rows.some((r) => r.owner);
      process.stdout.write(`${'ID'.padEnd(16)}${'STATUS'.padEnd(11)}${'CREATED'.padEnd(21)}${owners ? 'OWNER'.padEnd(12) : ''}NAME\n`);
      for (const r of rows) process.stdout.write(`${r.id.padEnd(16)}${r.status.padEnd(11)}${new Date(r.createdAt).toISOString().slice(0, 19).padEnd(21)}${owners ? (r.owner ?? '-').padEnd(12) : ''}${r.name}\n`);
    } finally {
      await client.close();
    }
  });

  addTargetOptions(
    program
      .command('status')
      .description('show a workflow and its jobs')
      .argument('<id>', 'workflow id (or a unique prefix)')
      .option('--store <url>', 'store URL')
      .option('--json', 'JSON output (same shape as `run --json`)'),
  ).action(async (id: string, o: CommonOpts) => {
    const { client, embedded } = await openClient(o);
    try {
      const d = await client.get(id);
      if (o.json) {
        process.stdout.write(resultJson(d, d.status, d.units, new Map()) + '\n');
        return;
      }
      printStatus(d, embedded);
    } finally {
      await client.close();
    }
  });

  addTargetOptions(
    program
      .command('logs')
      .description("print a job's output (stdout, or --err for stderr)")
      .argument('<id>', 'workflow id (or a unique prefix)')
      .argument('<job>', 'JOB or JOB:TASK')
      .option('--store <url>', 'store URL')
      .option('--err', 'stderr instead of stdout')
      .option('-f, --follow', 'keep printing as the job writes, until it ends'),
  ).action(async (id: string, jobArg: string, o: CommonOpts & { err?: boolean; follow?: boolean }) => {
    const { client } = await openClient(o);
    try {
      const m = /^(.*?)(?::(\d+))?$/.exec(jobArg)!;
      const job = m[1]!;
      const task = m[2] === undefined ? null : Number(m[2]);
      let wrote = 0;
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.on('SIGINT', stop);
      try {
        for await (const c of client.logs(id, { job, task, stream: o.err ? 'stderr' : 'stdout', follow: o.follow === true }, ac.signal)) {
          wrote += c.length;
          process.stdout.write(c);
        }
      } finally {
        process.off('SIGINT', stop);
      }
      if (wrote === 0 && !o.follow) {
        const d = await client.get(id);
        const key = task === null ? job : `${job}[${task}]`;
        const u = d.units.find((x) => x.key === key);
        process.stderr.write(`(no output${u ? `: ${key} is ${u.state}` : `: ${key} has not started`})\n`);
      }
    } finally {
      await client.close();
    }
  });

  addTargetOptions(
    program
      .command('cancel')
      .description('cancel a running workflow: running jobs are stopped, the rest marked canceled')
      .argument('<id>', 'workflow id (or a unique prefix)')
      .option('--store <url>', 'store URL'),
  ).action(async (id: string, o: CommonOpts) => {
    const { client } = await openClient(o);
    try {
      const sum = await client.cancel(id);
      // Wait (up to 10 s) until the runner reports the end.
      const t0 = Date.now();
      for (;;) {
        const r = await client.get(sum.id);
        if (r.status !== 'running' && r.status !== 'pending') {
          process.stderr.write(`workflow ${r.id} ${r.status}\n`);
          return;
        }
        if (Date.now() - t0 > 10_000) {
          process.stderr.write(`cancel requested for ${r.id}; its runner has not confirmed yet\n`);
          return;
        }
        await new Promise((r2) => setTimeout(r2, 100));
      }
    } finally {
      await client.close();
    }
  });
}

function printStatus(d: WorkflowDetail, embedded: boolean): void {
  const out = (s: string) => process.stdout.write(s);
  out(`workflow ${d.id} (${d.name}) ${d.status}\n  file: ${d.file ?? '-'}\n  logs: ${embedded ? join(d.runDir, 'logs') : `on the nodes (\`warren logs ${d.id} JOB\`)`}\n`);
  if (d.owner) out(`  owner: ${d.owner}\n`);
  const lease = d.driver ? { owner: d.driver.owner, expiresAt: d.driver.expiresAt, term: 0 } : null;
  const orphaned = embedded && (d.status === 'running' || d.status === 'pending') && (lease === null || lease.expiresAt <= Date.now() || holderIsGone(lease));
  if (orphaned) out(`  ! its runner${lease ? ` (${describeOwner(lease.owner)})` : ''} is gone (crashed or killed): \`warren resume ${d.id}\` continues it\n`);
  else if (lease && d.status === 'running') out(`  runner: ${describeOwner(lease.owner)}, lease until ${new Date(lease.expiresAt).toISOString()}\n`);
  const units = d.units;
  const missing = notStarted(d.spec, units);
  const finished = d.status !== 'running' && d.status !== 'pending';
  const waiting = new Map(Object.entries(d.waiting));
  const byJob = new Map<string, UnitSnapshot[]>();
  for (const u of inFileOrder(d.spec, units)) {
    const l = byJob.get(u.job);
    if (l) l.push(u);
    else byJob.set(u.job, [u]);
  }
  for (const job of missing.keys()) if (!byJob.has(job)) byJob.set(job, []);
  const standIns = [...units];
  for (const [job] of missing) standIns.push({ key: `${job}[?]`, kind: 'job', job, task: -1, state: 'pending', attempt: 0, exitCode: null, reason: null, message: null, startedAt: null, endedAt: null });
  const order = new Map(inFileOrder(d.spec, standIns).map((u, i) => [u.job, i]));
  const jobsInOrder = [...byJob].sort((a, b) => (order.get(a[0]) ?? 0) - (order.get(b[0]) ?? 0));
  for (const [job, us] of jobsInOrder) {
    const first = us[0] ?? { kind: 'job' as const };
    const label = first.kind === 'job' ? job : first.kind === 'ingress' ? `ingress ${job}` : 'egress';
    const spec = d.spec.jobs[job];
    if (!spec?.taskArray && us.length === 1) {
      const u = us[0]!;
      const extra = u.state === 'failed' || u.state === 'skipped' ? `  ${u.reason === 'exit' ? `exit ${u.exitCode}` : u.reason ?? ''}${u.message ? `: ${u.message}` : ''}` : '';
      out(`  ${label.padEnd(24)} ${u.state.padEnd(10)} attempts ${u.attempt}${extra}\n`);
    } else {
      // Big arrays: counts per state; tasks that never started count as pending (or
      // "not started" once the workflow has ended).
      const c: Record<string, number> = {};
      for (const u of us) c[u.state] = (c[u.state] ?? 0) + 1;
      const m = missing.get(job) ?? 0;
      if (m > 0) c[finished ? 'not started' : 'pending'] = (c[finished ? 'not started' : 'pending'] ?? 0) + m;
      out(`  ${label.padEnd(24)} ${us.length + m} tasks: ${Object.entries(c).map(([s, n]) => `${n} ${s}`).join(', ')}\n`);
    }
    const why = waiting.get(job);
    if (why) out(`  ${''.padEnd(24)} waiting: ${why}\n`);
  }
  if (d.services?.length) {
    out('  services:\n');
    for (const s of d.services) {
      const where = s.host ? ` at ${s.host}${s.node ? ` (node ${s.node})` : ''}` : '';
      out(`    ${s.name.padEnd(22)} ${s.state.padEnd(10)}${where}${s.persist ? ', persists' : ''}${s.probe ? `; probe ${s.probe}` : ''}\n`);
      for (const e of s.endpoints) out(`      endpoint ${e.name.padEnd(12)} ${e.url ?? `${e.protocol} port ${e.port ?? '?'} (${e.type})`}\n`);
      for (const p of s.ports) out(`      port     ${p.name.padEnd(12)} ${p.port}/${p.protocol}${s.state === 'ready' || s.state === 'starting' ? `  (\`warren port-forward ${d.id} ${s.name} ${p.port}\`)` : ''}\n`);
    }
  }
  // Annotations are kept as written; Warren acts on none yet (docs/workflow-format.md#annotations).
  const notes = workflowAnnotations(d.spec);
  if (notes.length) {
    out(`  annotations (kept; ${notes.some((a) => a.actedOn) ? 'those marked * act on placement' : 'Warren acts on none of them'}):\n`);
    const marks = notes.some((a) => a.actedOn);
    for (const a of notes) out(`    ${marks ? (a.actedOn ? '* ' : '  ') : ''}${a.owner ? `${a.owner}: ` : ''}${a.key}=${a.value}\n`);
  }
  const events = d.events.filter((e) => e.level !== 'info').slice(-10);
  if (events.length) {
    out('  recent events:\n');
    for (const e of events) out(`    ${new Date(e.at).toISOString().slice(11, 19)} ${e.message}\n`);
  }
}

