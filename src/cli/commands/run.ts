// `warren run|resume|list|status|logs|cancel`: running workflows on the embedded default
// (SQLite under $WARREN_HOME, an in-process orchestrator and local agent).

import type { Command } from 'commander';
import { createReadStream, existsSync, readFileSync, statSync, watch } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { join } from 'node:path';
import { EXIT, WarrenError, warrenHome, pidAlive, didYouMean } from '../../common/index.js';
import { explainWaiting, type UnitSnapshot, type WorkflowStatus } from '../../engine/index.js';
import { LocalAgent } from '../../agent/index.js';
import { closeSpawner, createProcessRuntime, type Runtime } from '../../runtime/index.js';
import { Orchestrator, PlanPlacement, describeOwner, holderIsGone, logPaths, type OrchestratorOptions, type RunOptions } from '../../server/index.js';
import { parsePlatform } from '../../scheduler/index.js';
import { loadWorkflowFile, type Workflow } from '../../workflow/index.js';
import { openStore, type Store, type WorkflowRecord } from '../../store/index.js';
import { RunView } from '../view.js';
import { nodePolicy } from '../policy.js';

interface CommonOpts {
  store?: string;
  cores?: string;
  json?: boolean;
}

/** The node's policy ($WARREN_HOME/policy.json): see ../policy.ts. */
export { nodePolicy } from '../policy.js';

type TrustGate = import('../../image/index.js').TrustGate;

/** The gate of a workflow that names no image: nothing to admit. */
const NO_IMAGES_GATE = { requireSigned: false, policy: {}, admit: async <T>(img: T): Promise<T> => img } as unknown as TrustGate;

/** The trust gate of this run: the one rule (src/image effectiveTrustPolicy) for the node policy and the workflow's. */
async function trustGate(wf: Workflow | undefined, home: string): Promise<TrustGate> {
  const { TrustGate, effectiveTrustPolicy, KeyStore } = await import('../../image/index.js');
  const policy = effectiveTrustPolicy(nodePolicy(home), wf?.policy, new KeyStore(join(home, 'keys')));
  return new TrustGate(policy, { dir: join(home, 'cache', 'trusted-sif') });
}

/**
 * Pull (or find) every image the workflow names and check the trust policy, before anything
 * runs (and again at resume). Under a policy the verified copies are what the jobs will run.
 */
async function prepareImages(wf: Workflow, gate: TrustGate, allowSetuid = false): Promise<void> {
  const uris = [...new Set(Object.values(wf.jobs).flatMap((j) => (j.image ? [j.image.uri] : [])))];
  if (uris.length === 0) return;
  const { prepareImage } = await import('../../image/index.js');
  for (const uri of uris) {
    const img = await prepareImage(uri, { onProgress: undefined, allowSetuid });
    if (!gate.requireSigned) continue;
    try {
      await gate.admit(img);
    } catch (e) {
      const err = e as WarrenError;
      if (typeof err.message === 'string' && !err.message.includes(uri)) err.message = `${uri}: ${err.message}`;
      throw err;
    }
  }
}

/** runc-based container runtime; under a trust policy every launch runs the verified copy (the gate). */
async function defaultContainerRuntimeFor(home: string, gate: TrustGate): Promise<Runtime | undefined> {
  const { defaultContainerRuntime } = await import('../../runtime/container/index.js');
  const { allowSetuid } = nodePolicy(home);
  if (!gate.requireSigned) return defaultContainerRuntime(home, { allowSetuid });
  return defaultContainerRuntime(home, { allowSetuid, trust: (img) => gate.admit(img) });
}

async function openAll(o: CommonOpts, wf?: Workflow, opened?: Store): Promise<{ store: Store; orch: Orchestrator; home: string; agent: LocalAgent; gate: TrustGate }> {
  const home = warrenHome();
  const store = opened ?? (await openStore(o.store));
  let cores: number | undefined;
  if (o.cores !== undefined) {
    cores = Number(o.cores);
    if (!Number.isInteger(cores) || cores < 1) throw new WarrenError('CLI_BAD_OPTION', `--cores must be a whole number >= 1, not "${o.cores}"`);
  } else if (process.env.WARREN_CORES) cores = Number(process.env.WARREN_CORES);
  const needsContainers = wf === undefined || Object.values(wf.jobs).some((j) => j.image !== undefined);
  // A workflow without images needs no trust gate: do not load the image subsystem (OpenPGP,
  // the registry client) for it, so a host-only `warren run` starts fast.
  const gate = needsContainers ? await trustGate(wf, home) : NO_IMAGES_GATE;
  const container = needsContainers ? await defaultContainerRuntimeFor(home, gate) : undefined;
  const agent = new LocalAgent({ cores, process: createProcessRuntime(), container });
  const mover = await dataMover(home);
  // Registry credentials named by `image.secret` come from the same secrets as data transfers.
  if (wf && Object.values(wf.jobs).some((j) => j.image?.secret)) mover.data = { secrets: (await import('../../data/index.js')).defaultSecretResolver(home) };
  const orch = new Orchestrator({ store, agent, home, ...mover });
  return { store, orch, home, agent, gate };
}

/** The data mover (src/data), loaded on first use: it brings the S3 SDK. */
async function dataMover(home: string): Promise<Pick<OrchestratorOptions, 'transfers' | 'data'>> {
  let mod: typeof import('../../data/index.js') | null = null;
  const load = async () => (mod ??= await import('../../data/index.js'));
  return {
    transfers: {
      ingress: async (t, root, opts) => (await load()).ingress(t, root, { ...opts, secrets: opts.secrets ?? (await load()).defaultSecretResolver(home) }),
      egress: async (t, root, opts) => (await load()).egress(t, root, { ...opts, secrets: opts.secrets ?? (await load()).defaultSecretResolver(home) }),
    },
  };
}

/** An orchestrator with one simulated agent per site of a platform, placing jobs by the plan. */
async function openSites(o: CommonOpts, wf: Workflow, platformFile: string, factor: number): Promise<{ store: Store; orch: Orchestrator }> {
  let text: string;
  try {
    text = readFileSync(platformFile, 'utf8');
  } catch (e) {
    throw new WarrenError('PLAN_PLATFORM_NOT_FOUND', `cannot read the platform file ${platformFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      hint: 'check the path (see examples/platform.yaml and docs/platform.md)',
    });
  }
  const platform = parsePlatform(text, platformFile);
  const home = warrenHome();
  const store = await openStore(o.store);
  const estimates: Record<string, number> = {};
  for (const j of Object.values(wf.jobs)) {
    const hist = await store.jobHistory(j.name, 5);
    if (hist.length && j.estimateSec === undefined) estimates[j.name] = hist.reduce((a, b) => a + b, 0) / hist.length;
  }
  const placement = new PlanPlacement(wf, platform, { estimates }, Date.now(), factor);
  const agents = new Map<string, LocalAgent>();
  for (const site of Object.keys(platform.sites)) {
    // Simulated jobs sleep: a site's agent admits as many as the site has cores.
    agents.set(site, new LocalAgent({ cores: Math.max(1, PlanPlacement.siteCores(platform, site)), memoryBytes: Number.MAX_SAFE_INTEGER, process: createProcessRuntime() }));
  }
  const plan = placement.current;
  process.stderr.write(`plan: makespan ${plan.makespan.toFixed(0)}s, cost ${plan.cost.toFixed(2)} ${plan.currency}, sites ${[...new Set(plan.jobs.map((j) => j.site))].join(', ')} (replayed at ×${factor})\n`);
  const local = new LocalAgent({ process: createProcessRuntime() });
  const orch = new Orchestrator({ store, agent: local, home, ...(await dataMover(home)), sites: { agents, placement } });
  return { store, orch };
}

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

function resultJson(rec: WorkflowRecord, status: WorkflowStatus, units0: UnitSnapshot[], attemptsPer: Map<string, number>): string {
  const units = inFileOrder(rec.spec, units0);
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return JSON.stringify({
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

/** Drive a workflow with the live view, Ctrl-C handling, and the final report. */
async function driveWithView(store: Store, orch: Orchestrator, rec: WorkflowRecord, json: boolean): Promise<number> {
  const live = !json && process.stderr.isTTY === true && process.env.TERM !== 'dumb';
  const view = new RunView(process.stderr, live, json);
  view.start(rec.id, rec.runDir, await store.units(rec.id), rec.spec);
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write(`\n${sig === 'SIGINT' ? 'Ctrl-C' : sig}: canceling workflow ${rec.id} (again to force quit; \`warren resume ${rec.id}\` continues it)\n`);
      orch.cancel();
    } else {
      process.exit(EXIT.canceled);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let status: WorkflowStatus;
  try {
    status = await orch.drive(rec.id, {
      onUnit: (u) => view.unit(u),
      onEvent: (level, _key, msg) => view.event(level, msg),
      onProgress: (key, p) => view.transfer(key, p.bytes, p.totalBytes),
    });
  } finally {
    view.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // `warren run` ends after its launcher (warren-spawn), never before.
    await closeSpawner();
  }
  if (json) {
    process.stdout.write(resultJson(rec, status, await store.units(rec.id), new Map()) + '\n');
  } else {
    // Counts from the engine (tasks that never started included): no need to read a row per task.
    const jobs = orch.lastCounts.filter((c) => c.kind === 'job');
    const count = (s: keyof (typeof jobs)[number]['counts']) => jobs.reduce((n, c) => n + c.counts[s], 0);
    const parts = (['succeeded', 'failed', 'skipped', 'canceled'] as const).map((s) => [s, count(s)] as const).filter(([, n]) => n > 0);
    process.stderr.write(`workflow ${rec.id} ${status}: ${parts.map(([s, n]) => `${n} ${s}`).join(', ')}\n`);
    if (status === 'failed') process.stderr.write(`  hint: see the logs with \`warren logs ${rec.id} JOB\`; fix the cause, then \`warren resume ${rec.id}\` re-runs only what did not succeed\n`);
  }
  return exitFor(status);
}

export function register(program: Command): void {
  const common = (c: Command) =>
    c.option('--store <url>', 'store: a SQLite path or postgres:// URL (default $WARREN_HOME/warren.db)').option('--cores <n>', 'cores the local agent may use (default: all)');

  common(
    program
      .command('run')
      .description('validate and run a workflow on this machine (embedded store, local agent)')
      .argument('<file>', 'workflow file (Fuzzfile YAML v1/v4, or WfFormat JSON)')
      .option('--json', 'print one JSON result object at the end, and nothing else on stdout')
      .option('--fail-fast', 'start nothing new after the first failure')
      .option('--simulate [factor]', 'replace every command by a sleep of its estimate × factor (default 1)')
      .option('--platform <file>', 'with --simulate: replay the workflow across the sites of a platform file, placed (and re-placed) by the planner'),
  ).action(async (file: string, o: CommonOpts & { failFast?: boolean; simulate?: string | boolean; platform?: string }) => {
    const wf: Workflow = loadWorkflowFile(file);
    const options: RunOptions = { failFast: o.failFast === true };
    if (o.simulate !== undefined) {
      const f = o.simulate === true ? 1 : Number(o.simulate);
      if (!Number.isFinite(f) || f < 0) throw new WarrenError('CLI_BAD_OPTION', `--simulate takes a factor >= 0, not "${o.simulate}"`);
      options.simulate = f;
    }
    if (o.platform !== undefined && options.simulate === undefined) {
      throw new WarrenError('CLI_BAD_OPTION', '--platform runs across sites, which needs site agents (cluster mode); on one machine it replays the plan', {
        hint: 'add --simulate [factor] to replay the workflow across the platform\'s sites here, or use `warren plan FILE --platform P.yaml` to see the plan',
      });
    }
    const opened: { store: Store; orch: Orchestrator; gate?: TrustGate } = o.platform !== undefined ? await openSites(o, wf, o.platform, options.simulate!) : await openAll(o, wf);
    const { store, orch } = opened;
    try {
      if (options.simulate === undefined) await prepareImages(wf, opened.gate ?? (await trustGate(wf, warrenHome())), nodePolicy(warrenHome()).allowSetuid);
      const rec = await orch.accept(wf, { ...options, agentCores: orch.nodeCores });
      process.exitCode = await driveWithView(store, orch, rec, o.json === true);
    } finally {
      await store.close();
    }
  });

  common(
    program
      .command('resume')
      .description('continue a workflow that was interrupted or failed, re-running only what did not succeed')
      .argument('<id>', 'workflow id (or a unique prefix)')
      .option('--json', 'print one JSON result object at the end'),
  ).action(async (id: string, o: CommonOpts) => {
    const st = await openStore(o.store);
    let rec: WorkflowRecord;
    try {
      rec = await mustGet(st, id);
    } catch (e) {
      await st.close();
      throw e;
    }
    // The stored workflow's own policy applies again, with the node's as it is now.
    const { store, orch, gate } = await openAll(o, rec.spec, st);
    try {
      if (rec.status === 'succeeded') {
        process.stderr.write(`workflow ${rec.id} already succeeded; nothing to do\n`);
        return;
      }
      // Refused (RUN_LEASE_HELD, exit 2) while another runner holds the run's lease.
      // Check the images again (time of check = time of use): an image swapped since the run
      // (or a policy tightened since) is refused before anything runs again.
      await prepareImages(rec.spec, gate, nodePolicy(warrenHome()).allowSetuid);
      process.exitCode = await driveWithView(store, orch, rec, o.json === true);
    } finally {
      await store.close();
    }
  });

  program
    .command('list')
    .description('list recent workflows')
    .option('--store <url>', 'store URL')
    .option('--json', 'JSON output')
    .option('--limit <n>', 'how many', '20')
    .action(async (o: CommonOpts & { limit: string }) => {
      const store = await openStore(o.store);
      try {
        const rows = await store.listWorkflows({ limit: Number(o.limit) || 20 });
        if (o.json) {
          process.stdout.write(JSON.stringify(rows.map((r) => ({ id: r.id, name: r.name, status: r.status, file: r.file, createdAt: new Date(r.createdAt).toISOString() }))) + '\n');
          return;
        }
        if (rows.length === 0) {
          process.stdout.write('no workflows yet: start one with `warren run FILE`\n');
          return;
        }
        process.stdout.write(`${'ID'.padEnd(16)}${'STATUS'.padEnd(11)}${'CREATED'.padEnd(21)}NAME\n`);
        for (const r of rows) process.stdout.write(`${r.id.padEnd(16)}${r.status.padEnd(11)}${new Date(r.createdAt).toISOString().slice(0, 19).padEnd(21)}${r.name}\n`);
      } finally {
        await store.close();
      }
    });

  program
    .command('status')
    .description('show a workflow and its jobs')
    .argument('<id>', 'workflow id (or a unique prefix)')
    .option('--store <url>', 'store URL')
    .option('--json', 'JSON output (same shape as `run --json`)')
    .action(async (id: string, o: CommonOpts) => {
      const store = await openStore(o.store);
      try {
        const rec = await mustGet(store, id);
        const units = await store.units(rec.id);
        if (o.json) {
          process.stdout.write(resultJson(rec, rec.status, units, new Map()) + '\n');
          return;
        }
        process.stdout.write(`workflow ${rec.id} (${rec.name}) ${rec.status}\n  file: ${rec.file ?? '-'}\n  logs: ${join(rec.runDir, 'logs')}\n`);
        const lease = rec.lease;
        const orphaned = (rec.status === 'running' || rec.status === 'pending') && (lease === null || lease.expiresAt <= Date.now() || holderIsGone(lease));
        if (orphaned) process.stdout.write(`  ! its runner${lease ? ` (${describeOwner(lease.owner)})` : ''} is gone (crashed or killed): \`warren resume ${rec.id}\` continues it\n`);
        else if (lease && rec.status === 'running') process.stdout.write(`  runner: ${describeOwner(lease.owner)}, lease term ${lease.term} until ${new Date(lease.expiresAt).toISOString()}\n`);
        const missing = notStarted(rec.spec, units);
        const finished = rec.status !== 'running' && rec.status !== 'pending';
        // A task array's tasks that never started have no row: one stand-in per array for the explanation.
        const forExplain = [...units];
        for (const [job] of missing) forExplain.push({ key: `${job}[?]`, kind: 'job', job, task: -1, state: 'pending', attempt: 0, exitCode: null, reason: null, message: null, startedAt: null, endedAt: null });
        const waiting = rec.status === 'running' && !orphaned ? explainWaiting(rec.spec, forExplain, { cores: Number(rec.options.agentCores) || availableParallelism() }) : new Map<string, string>();
        const byJob = new Map<string, UnitSnapshot[]>();
        for (const u of inFileOrder(rec.spec, units)) {
          const l = byJob.get(u.job);
          if (l) l.push(u);
          else byJob.set(u.job, [u]);
        }
        for (const job of missing.keys()) if (!byJob.has(job)) byJob.set(job, []);
        const order = new Map(inFileOrder(rec.spec, forExplain).map((u, i) => [u.job, i]));
        const jobsInOrder = [...byJob].sort((a, b) => (order.get(a[0]) ?? 0) - (order.get(b[0]) ?? 0));
        for (const [job, us] of jobsInOrder) {
          const first = us[0] ?? { kind: 'job' as const };
          const label = first.kind === 'job' ? job : first.kind === 'ingress' ? `ingress ${job}` : 'egress';
          const spec = rec.spec.jobs[job];
          if (!spec?.taskArray && us.length === 1) {
            const u = first;
            const extra = u.state === 'failed' || u.state === 'skipped' ? `  ${u.reason === 'exit' ? `exit ${u.exitCode}` : u.reason ?? ''}${u.message ? `: ${u.message}` : ''}` : '';
            process.stdout.write(`  ${label.padEnd(24)} ${u.state.padEnd(10)} attempts ${u.attempt}${extra}\n`);
          } else {
            // Big arrays: counts per state; tasks that never started count as pending (or
            // "not started" once the workflow has ended).
            const c: Record<string, number> = {};
            for (const u of us) c[u.state] = (c[u.state] ?? 0) + 1;
            const m = missing.get(job) ?? 0;
            if (m > 0) c[finished ? 'not started' : 'pending'] = (c[finished ? 'not started' : 'pending'] ?? 0) + m;
            process.stdout.write(`  ${label.padEnd(24)} ${us.length + m} tasks: ${Object.entries(c).map(([s, n]) => `${n} ${s}`).join(', ')}\n`);
          }
          const why = waiting.get(job);
          if (why) process.stdout.write(`  ${''.padEnd(24)} waiting: ${why}\n`);
        }
        const events = (await store.events(rec.id)).filter((e) => e.level !== 'info').slice(-10);
        if (events.length) {
          process.stdout.write('  recent events:\n');
          for (const e of events) process.stdout.write(`    ${new Date(e.at).toISOString().slice(11, 19)} ${e.message}\n`);
        }
      } finally {
        await store.close();
      }
    });

  program
    .command('logs')
    .description("print a job's output (stdout, or --err for stderr)")
    .argument('<id>', 'workflow id (or a unique prefix)')
    .argument('<job>', 'JOB or JOB:TASK')
    .option('--store <url>', 'store URL')
    .option('--err', 'stderr instead of stdout')
    .option('-f, --follow', 'keep printing as the job writes, until it ends')
    .action(async (id: string, jobArg: string, o: CommonOpts & { err?: boolean; follow?: boolean }) => {
      const store = await openStore(o.store);
      try {
        const rec = await mustGet(store, id);
        const m = /^(.*?)(?::(\d+))?$/.exec(jobArg)!;
        const job = m[1]!;
        const task = m[2] === undefined ? null : Number(m[2]);
        const spec = rec.spec.jobs[job];
        if (!spec) {
          throw new WarrenError('RUN_UNKNOWN_JOB', `workflow ${rec.id} has no job "${job}"`, {
            hint: jobHint(job, Object.keys(rec.spec.jobs)),
          });
        }
        if (spec.taskArray && task === null) {
          throw new WarrenError('RUN_TASK_NEEDED', `job "${job}" is a task array`, {
            hint: `name a task: \`warren logs ${rec.id} ${job}:${spec.taskArray.start}\` (tasks ${spec.taskArray.start}..${spec.taskArray.end})`,
          });
        }
        const key = task === null ? job : `${job}[${task}]`;
        const path = o.err ? logPaths(rec.runDir, job, task).err : logPaths(rec.runDir, job, task).out;
        if (!o.follow) {
          if (!existsSync(path)) {
            const ta = spec.taskArray;
            if (task !== null && (!ta || task < ta.start || task > ta.end)) throw new WarrenError('RUN_UNKNOWN_TASK', `job "${job}" has no task ${task}`, { hint: ta ? `its tasks are ${ta.start}..${ta.end}` : `it is not a task array: \`warren logs ${rec.id} ${job}\`` });
            const u = (await store.units(rec.id)).find((x) => x.key === key);
            process.stderr.write(`(no output${u ? `: ${key} is ${u.state}` : `: ${key} has not started`})\n`);
            return;
          }
          await pipeFile(path, 0);
          return;
        }
        await follow(store, rec.id, key, path);
      } finally {
        await store.close();
      }
    });

  program
    .command('cancel')
    .description('cancel a running workflow: running jobs are stopped, the rest marked canceled')
    .argument('<id>', 'workflow id (or a unique prefix)')
    .option('--store <url>', 'store URL')
    .action(async (id: string, o: CommonOpts) => {
      const store = await openStore(o.store);
      try {
        const rec = await mustGet(store, id);
        if (rec.status !== 'running' && rec.status !== 'pending') {
          throw new WarrenError('RUN_NOT_RUNNING', `workflow ${rec.id} is not running (it ${rec.status === 'canceled' ? 'was canceled' : rec.status})`, {
            hint: rec.status === 'failed' || rec.status === 'canceled' ? `\`warren resume ${rec.id}\` would run it again` : undefined,
          });
        }
        const lease = rec.lease;
        if (lease && lease.expiresAt > Date.now() && !holderIsGone(lease)) {
          // A live runner holds the lease: ask it (it polls the store); on this host a signal makes it react at once.
          await store.write({ workflows: [{ id: rec.id, patch: { cancelRequested: true } }] });
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
          const { orch } = await openAll(o);
          await orch.cancelAbandoned(rec.id);
        }
        // Wait (up to 10 s) until the runner reports the end.
        const t0 = Date.now();
        for (;;) {
          const r = await store.getWorkflow(rec.id);
          if (r && r.status !== 'running' && r.status !== 'pending') {
            process.stderr.write(`workflow ${rec.id} ${r.status}\n`);
            return;
          }
          if (Date.now() - t0 > 10_000) {
            process.stderr.write(`cancel requested for ${rec.id}; its runner has not confirmed yet\n`);
            return;
          }
          await new Promise((r2) => setTimeout(r2, 100));
        }
      } finally {
        await store.close();
      }
    });
}

/** "did you mean" by edit distance, else the first few job names. */
function jobHint(job: string, names: string[]): string {
  const best = didYouMean(job, names);
  if (best !== undefined) return `did you mean "${best}"?`;
  return `its jobs: ${names.slice(0, 8).join(', ')}${names.length > 8 ? `, … (${names.length} in all; see \`warren status ID\`)` : ''}`;
}


async function mustGet(store: Store, id: string): Promise<WorkflowRecord> {
  const rec = await store.getWorkflow(id);
  if (!rec) throw new WarrenError('RUN_NOT_FOUND', `no workflow "${id}"`, { hint: 'see `warren list` for the ids of recent workflows' });
  return rec;
}

function pipeFile(path: string, start: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createReadStream(path, { start });
    let n = start;
    s.on('data', (c) => {
      n += c.length;
      process.stdout.write(c);
    });
    s.on('end', () => resolve(n));
    s.on('error', reject);
  });
}

async function follow(store: Store, id: string, key: string, path: string): Promise<void> {
  let pos = 0;
  const terminal = new Set(['succeeded', 'failed', 'canceled', 'skipped']);
  for (;;) {
    if (existsSync(path) && statSync(path).size > pos) pos = await pipeFile(path, pos);
    const u = (await store.units(id)).find((x) => x.key === key);
    const wf = await store.getWorkflow(id);
    if (!u || terminal.has(u.state) || (wf && wf.status !== 'running' && wf.status !== 'pending')) {
      if (existsSync(path) && statSync(path).size > pos) await pipeFile(path, pos);
      return;
    }
    await new Promise<void>((r) => {
      let w: ReturnType<typeof watch> | null = null;
      const t = setTimeout(() => {
        w?.close();
        r();
      }, 250);
      try {
        if (existsSync(path))
          w = watch(path, () => {
            clearTimeout(t);
            w?.close();
            r();
          });
      } catch {
        /* polling is enough */
      }
    });
  }
}

/** Host and pid of the runner named by the run's lease owner ("host:pid:rand").
 *  TODO(orchestrator): lease — decide from the lease (held, expired) instead of the pid. */
function runnerOf(rec: WorkflowRecord): { host: string | null; pid: number | null } {
  const m = rec.lease ? /^(.*):(\d+):[^:]*$/.exec(rec.lease.owner) : null;
  return m ? { host: m[1]!, pid: Number(m[2]) } : { host: null, pid: null };
}
