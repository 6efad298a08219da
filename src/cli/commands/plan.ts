// `warren plan FILE`: where and when each job of a workflow would run on a platform, and
// `warren site add|list|remove`: the sites of this (embedded) server, kept in
// $WARREN_HOME/platform.yaml.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { EXIT, WarrenError, formatBytes, formatDuration, parseDuration, parseSize, warrenHome } from '../../common/index.js';
import { loadWorkflowFile, readStorageClasses } from '../../workflow/index.js';
import { parsePlatform, planWorkflow, platformToObject } from '../../scheduler/index.js';
import type { Plan, PlanOptions, Platform } from '../../scheduler/index.js';
import { commandGroup } from '../util.js';

/** Where `warren site` keeps the sites of this server. */
export function serverPlatformFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(warrenHome(env), 'platform.yaml');
}

function readPlatformFile(file: string, what: string): Platform {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WarrenError('PLAN_PLATFORM_NOT_FOUND', `cannot read ${what} ${file}${code === 'ENOENT' ? ': no such file' : `: ${(e as Error).message}`}`, {
      hint: what === 'the server platform' ? 'add sites with `warren site add FILE.yaml`, or pass --platform P.yaml' : 'check the path of the platform file',
    });
  }
  return parsePlatform(text, file);
}

/**
 * A file of sites to add to an existing server platform: `data:` may be left out (the server
 * already says where its data lives) and links may name the server's sites.
 */
function readSitesFile(file: string, serverSites: string[]): Platform {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return readPlatformFile(file, 'the platform file'); // reports the read error
  }
  return parsePlatform(text, file, { otherSites: serverSites, dataOptional: true });
}

/** The plan as `warren plan --json` prints it. */
export function planJson(plan: Plan): Record<string, unknown> {
  return {
    makespan: plan.makespan,
    cost: plan.cost,
    currency: plan.currency,
    objective: plan.objective,
    ...(plan.deadlineMet !== undefined ? { deadlineMet: plan.deadlineMet } : {}),
    ...(plan.budgetMet !== undefined ? { budgetMet: plan.budgetMet } : {}),
    jobs: plan.jobs.map((j) => ({ id: j.id, site: j.site, instanceType: j.instanceType, start: j.start, end: j.end })),
    transfers: plan.transfers.map((t) => ({ file: t.file, from: t.from, to: t.to, start: t.start, end: t.end, bytes: t.bytes })),
    ...(plan.notes.length ? { notes: plan.notes } : {}),
  };
}

const money = (v: number): string => v.toFixed(v !== 0 && Math.abs(v) < 0.01 ? 4 : 2);
const secs = (v: number): string => v.toFixed(1);

/** The plan as text: totals, then every job with why it goes where it goes. */
export function formatPlan(plan: Plan, platformFile: string): string {
  const cur = plan.currency;
  const out: string[] = [];
  const obj =
    plan.objective === 'deadline'
      ? `cheapest within the deadline ${formatDuration(plan.deadlineSec!)}`
      : plan.objective === 'budget'
        ? `fastest within the budget ${plan.budget} ${cur}`
        : 'fastest';
  out.push(`plan for ${plan.workflow} on ${platformFile} (objective: ${obj})`);
  out.push(`makespan ${formatDuration(plan.makespan)} (${secs(plan.makespan)} s), cost ${money(plan.cost)} ${cur} (clusters ${money(plan.costBreakdown.cluster)}, cloud instances ${money(plan.costBreakdown.cloud)}, egress ${money(plan.costBreakdown.egress)}), ${plan.jobs.length} jobs, algorithm ${plan.algorithm}`);
  const bytes = plan.transfers.reduce((s, t) => s + t.bytes, 0);
  out.push(`transfers: ${plan.transfers.length} (${formatBytes(bytes)}); cloud instances: ${plan.instances.length}`);
  for (const n of plan.notes) out.push(`note: ${n}`);
  const perSite = new Map<string, number>();
  for (const j of plan.jobs) perSite.set(j.site, (perSite.get(j.site) ?? 0) + 1);
  out.push(`jobs per site: ${[...perSite].map(([s, n]) => `${s} ${n}`).join(', ')}`);
  if (plan.instances.length) {
    out.push('');
    out.push('INSTANCE                                  BOOT      READY     END       COST');
    for (const i of plan.instances) {
      out.push(`${`${i.site}/${i.instanceType}#${i.index}`.padEnd(41)} ${secs(i.bootStart).padEnd(9)} ${secs(i.readyAt).padEnd(9)} ${secs(i.end).padEnd(9)} ${money(i.cost)}`);
    }
  }
  out.push('');
  out.push('JOB                               SITE                INSTANCE          START     END       COST');
  for (const j of [...plan.jobs].sort((a, b) => a.start - b.start || a.id.localeCompare(b.id))) {
    const it = j.instanceType ? `${j.instanceType}#${j.instance}` : '-';
    out.push(`${j.id.padEnd(33)} ${j.site.padEnd(19)} ${it.padEnd(17)} ${secs(j.start).padEnd(9)} ${secs(j.end).padEnd(9)} ${money(j.cost)}`);
    out.push(`    why: ${j.reason}`);
  }
  if (plan.transfers.length) {
    out.push('');
    out.push('TRANSFER                          FROM                TO                  START     END       SIZE');
    for (const t of plan.transfers) {
      out.push(`${t.file.padEnd(33)} ${t.from.padEnd(19)} ${t.to.padEnd(19)} ${secs(t.start).padEnd(9)} ${secs(t.end).padEnd(9)} ${formatBytes(t.bytes)}`);
    }
  }
  return out.join('\n') + '\n';
}

function parseDeadline(v: string): number {
  const d = parseDuration(v);
  if (d === undefined) throw new WarrenError('PLAN_BAD_OPTION', `--deadline: cannot read "${v}"`, { hint: 'write a duration, e.g. 90m, 2h30m or 3600 (seconds)' });
  return d;
}

function parseBudget(v: string): number {
  const b = Number(v);
  if (v.trim() === '' || !Number.isFinite(b) || b < 0) throw new WarrenError('PLAN_BAD_OPTION', `--budget: "${v}" is not an amount >= 0`, { hint: 'write a number in the platform currency, e.g. 25 or 12.5' });
  return b;
}

interface PlanCliOptions {
  platform?: string;
  json?: boolean;
  deadline?: string;
  budget?: string;
  spot?: boolean;
  defaultEstimate?: string;
}

/** `warren plan`: returns the text to print and the exit code (1 when the deadline or budget cannot be met). */
export function runPlan(file: string, o: PlanCliOptions, env: NodeJS.ProcessEnv = process.env): { text: string; exitCode: number; plan: Plan } {
  const platformFile = o.platform ?? serverPlatformFile(env);
  const platform = readPlatformFile(platformFile, o.platform ? 'the platform file' : 'the server platform');
  const wf = loadWorkflowFile(file, { storageClasses: readStorageClasses(warrenHome()) });
  const opts: PlanOptions = {};
  if (o.deadline !== undefined) opts.deadlineSec = parseDeadline(o.deadline);
  if (o.budget !== undefined) opts.budget = parseBudget(o.budget);
  if (o.spot) opts.spot = true;
  if (o.defaultEstimate !== undefined) opts.defaultEstimateSec = parseDeadline(o.defaultEstimate);
  const plan = planWorkflow(wf, platform, opts);
  const text = o.json ? `${JSON.stringify(planJson(plan), null, 2)}\n` : formatPlan(plan, platformFile);
  const exitCode = plan.deadlineMet === false || plan.budgetMet === false ? EXIT.failed : EXIT.ok;
  return { text, exitCode, plan };
}

// ---- sites of this server ----------------------------------------------------------------

function writeAtomic(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

interface SiteAddOptions {
  name?: string;
  kind?: string;
  partition?: string;
  account?: string;
  qos?: string;
  mode?: string;
  sbatch?: string;
  ssh?: string;
  maxPilots?: string;
  pilotCores?: string;
  pilotMemory?: string;
  pilotWalltime?: string;
  slurmConf?: string;
  /** false: do not check Slurm sites before adding them (--no-check). */
  check?: boolean;
  nodes?: string;
  cores?: string;
  memory?: string;
  gpus?: string;
  speed?: string;
  price?: string;
  replace?: boolean;
}

const HEADER = '# Sites of this Warren server (managed by `warren site add|remove`; format: docs/platform.md)\n';

/** Add the sites of a platform file (or one cluster or Slurm site given by options) to the server's platform, and write it. */
export function siteAdd(file: string | undefined, o: SiteAddOptions, env: NodeJS.ProcessEnv = process.env): { added: string[]; file: string } {
  const p = siteAddPlan(file, o, env);
  writeAtomic(p.file, p.text);
  return { added: p.added, file: p.file };
}

/** The server's platform with the sites added, not written yet: its text and the parsed platform. */
export function siteAddPlan(file: string | undefined, o: SiteAddOptions, env: NodeJS.ProcessEnv = process.env): { added: string[]; file: string; text: string; platform: Platform } {
  const target = serverPlatformFile(env);
  const current = existsSync(target) ? readPlatformFile(target, 'the server platform') : undefined;
  let doc: Record<string, unknown>;
  if (file !== undefined) {
    if (o.name !== undefined) throw new WarrenError('PLAN_BAD_OPTION', 'give either a platform FILE or --name, not both', { hint: '`warren site add sites.yaml` or `warren site add --name hpc --nodes 4 --cores 32`' });
    if (current) {
      doc = platformToObject(readSitesFile(file, Object.keys(current.sites)));
    } else {
      doc = platformToObject(readPlatformFile(file, 'the platform file'));
    }
  } else if (o.kind === 'slurm') {
    if (o.name === undefined) throw new WarrenError('PLAN_BAD_OPTION', 'nothing to add: give a platform FILE or --name with --partition', { hint: '`warren site add --kind slurm --name hpc --partition batch`' });
    if (o.partition === undefined) throw new WarrenError('PLAN_BAD_OPTION', `Slurm site "${o.name}": --partition is required`, { hint: 'e.g. `warren site add --kind slurm --name hpc --partition batch`' });
    const site: Record<string, unknown> = { kind: 'slurm', partition: o.partition, mode: o.mode ?? 'pilot' };
    for (const [k, v] of [['account', o.account], ['qos', o.qos], ['sbatch', o.sbatch], ['ssh', o.ssh]] as const) if (v !== undefined) site[k] = v;
    if (o.maxPilots !== undefined) site['max-pilots'] = Number(o.maxPilots);
    const pilot: Record<string, unknown> = {};
    if (o.pilotCores !== undefined) pilot.cores = Number(o.pilotCores);
    if (o.pilotMemory !== undefined) pilot.memory = o.pilotMemory;
    if (o.pilotWalltime !== undefined) pilot.walltime = o.pilotWalltime;
    if (Object.keys(pilot).length) site.pilot = pilot;
    if (o.slurmConf !== undefined) site.env = { SLURM_CONF: o.slurmConf };
    if (o.price !== undefined) site.price = Number(o.price);
    if (o.speed !== undefined) site.speed = Number(o.speed);
    doc = { sites: { [o.name]: site }, data: { default: o.name } };
  } else {
    if (o.kind !== undefined && o.kind !== 'cluster') throw new WarrenError('PLAN_BAD_OPTION', `--kind takes cluster or slurm, not "${o.kind}"`, { hint: 'cloud regions are added from a platform file' });
    if (o.name === undefined) throw new WarrenError('PLAN_BAD_OPTION', 'nothing to add: give a platform FILE or --name with --nodes and --cores', { hint: '`warren site add sites.yaml` or `warren site add --name hpc --nodes 4 --cores 32 [--memory 192GiB --gpus 0 --speed 1 --price 0]`' });
    if (o.nodes === undefined || o.cores === undefined) throw new WarrenError('PLAN_BAD_OPTION', `site "${o.name}": --nodes and --cores are required`, { hint: 'e.g. `warren site add --name hpc --nodes 4 --cores 32`' });
    const num = (v: string | undefined, flag: string): number | undefined => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw new WarrenError('PLAN_BAD_OPTION', `${flag}: "${v}" is not a number`, { hint: `write a number after ${flag}` });
      return n;
    };
    const site: Record<string, unknown> = { kind: 'cluster', nodes: num(o.nodes, '--nodes'), cores: num(o.cores, '--cores') };
    if (o.memory !== undefined) {
      const m = parseSize(o.memory);
      if (m === undefined) throw new WarrenError('PLAN_BAD_OPTION', `--memory: cannot read "${o.memory}"`, { hint: 'write a size, e.g. 192GiB' });
      site.memory = m;
    }
    for (const [k, v, flag] of [['gpus', o.gpus, '--gpus'], ['speed', o.speed, '--speed'], ['price', o.price, '--price']] as const) {
      const n = num(v, flag);
      if (n !== undefined) site[k] = n;
    }
    doc = { sites: { [o.name]: site }, data: { default: o.name } };
  }
  const newSites = doc.sites as Record<string, unknown>;
  const merged: Record<string, unknown> = current ? platformToObject(current) : { currency: doc.currency ?? 'USD', sites: {}, links: [], data: doc.data };
  const sites = merged.sites as Record<string, unknown>;
  for (const name of Object.keys(newSites)) {
    if (sites[name] && !o.replace) {
      throw new WarrenError('PLAN_SITE_EXISTS', `site "${name}" already exists in ${target}`, { hint: 'pass --replace to overwrite it, or `warren site remove NAME` first' });
    }
    sites[name] = newSites[name];
  }
  const links = (merged.links as { from: string; to: string }[]).filter(
    (l) => !(doc.links as { from: string; to: string }[] | undefined)?.some((n) => n.from === l.from && n.to === l.to),
  );
  merged.links = [...links, ...((doc.links as unknown[] | undefined) ?? [])];
  if (current) {
    const data = merged.data as { default: string; locations?: Record<string, string> };
    const locs = (doc.data as { locations?: Record<string, string> } | undefined)?.locations;
    if (locs) data.locations = { ...(data.locations ?? {}), ...locs };
  }
  const text = HEADER + stringify(merged);
  const platform = parsePlatform(text, target); // the result must be a valid platform before it is written
  return { added: Object.keys(newSites), file: target, text, platform };
}

/** Remove a site and its links. */
export function siteRemove(name: string, env: NodeJS.ProcessEnv = process.env): void {
  const target = serverPlatformFile(env);
  const p = readPlatformFile(target, 'the server platform');
  if (!p.sites[name]) throw new WarrenError('PLAN_UNKNOWN_SITE', `no site "${name}" in ${target}`, { hint: `known sites: ${Object.keys(p.sites).join(', ')}` });
  if (Object.keys(p.sites).length === 1) throw new WarrenError('PLAN_LAST_SITE', `"${name}" is the only site of ${target}`, { hint: `delete ${target} to remove every site` });
  const uses = [p.data.default === name ? 'data.default' : '', ...p.data.locations.filter((l) => l.site === name).map((l) => `data at ${l.prefix}`)].filter(Boolean);
  if (uses.length) throw new WarrenError('PLAN_SITE_IN_USE', `site "${name}" holds data (${uses.join(', ')})`, { hint: `edit ${target} to move the data to another site first` });
  const o = platformToObject(p);
  delete (o.sites as Record<string, unknown>)[name];
  o.links = (o.links as { from: string; to: string }[]).filter((l) => l.from !== name && l.to !== name);
  const text = HEADER + stringify(o);
  parsePlatform(text, target);
  writeAtomic(target, text);
}

/** `warren site list` as text or JSON. */
export function siteList(json: boolean, env: NodeJS.ProcessEnv = process.env): string {
  const target = serverPlatformFile(env);
  if (!existsSync(target)) {
    return json ? `${JSON.stringify({ sites: [], links: [], data: null }, null, 2)}\n` : `no sites yet (${target}); add some with \`warren site add FILE.yaml\`\n`;
  }
  const p = readPlatformFile(target, 'the server platform');
  if (json) {
    return `${JSON.stringify({ currency: p.currency, sites: Object.values(p.sites), links: p.links, data: p.data }, null, 2)}\n`;
  }
  const out: string[] = ['SITE                 KIND     CAPACITY                                  SPEED   PRICE'];
  for (const s of Object.values(p.sites)) {
    if (s.kind === 'cluster') {
      const cap = `${s.nodes} nodes x ${s.cores} cores${s.gpus ? ` x ${s.gpus} GPUs` : ''}${s.memoryBytes ? `, ${formatBytes(s.memoryBytes)}/node` : ''}`;
      out.push(`${s.name.padEnd(20)} cluster  ${cap.padEnd(41)} ${String(s.speed).padEnd(7)} ${s.price} ${p.currency}/core-hour`);
    } else if (s.kind === 'slurm') {
      const cap = `${s.partition}, ${s.mode}: <=${s.maxPilots} x ${s.pilot.cores} cores${s.mode === 'pilot' ? `, ${formatDuration(s.pilot.walltimeSec)}` : ''}`;
      out.push(`${s.name.padEnd(20)} slurm    ${cap.padEnd(41)} ${String(s.speed).padEnd(7)} ${s.price} ${p.currency}/core-hour`);
    } else {
      for (const it of Object.values(s.instanceTypes)) {
        const cap = `${it.name}: <=${it.max} x ${it.cores} cores${it.gpus ? ` x ${it.gpus} GPUs` : ''}, boot ${formatDuration(it.bootSec)}`;
        out.push(`${s.name.padEnd(20)} cloud    ${cap.padEnd(41)} ${String(it.speed).padEnd(7)} ${it.price} ${p.currency}/hour${it.spotPrice !== undefined ? ` (spot ${it.spotPrice})` : ''}`);
      }
    }
  }
  if (p.links.length) {
    out.push('', 'LINK                                      BANDWIDTH       LATENCY   PRICE/GB');
    for (const l of p.links) out.push(`${`${l.from} -> ${l.to}`.padEnd(41)} ${`${((l.bandwidth * 8) / 1e9).toFixed(2)} Gbps`.padEnd(15)} ${`${(l.latencySec * 1000).toFixed(1)} ms`.padEnd(9)} ${l.pricePerGB}`);
  }
  out.push('', `data: default ${p.data.default}${p.data.locations.map((l) => `; ${l.prefix} at ${l.site}`).join('')}`);
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('plan')
    .description('plan where and when each job runs across clusters and cloud regions (no job is run)')
    .argument('<file>', 'workflow file (Fuzzfile YAML or WfFormat JSON)')
    .option('--platform <file>', 'platform file (default: the sites of this server, $WARREN_HOME/platform.yaml)')
    .option('--json', 'print the plan as JSON')
    .option('--deadline <duration>', 'finish within this time (e.g. 2h): the cheapest plan that meets it')
    .option('--budget <amount>', 'spend at most this (platform currency): the fastest plan within it')
    .option('--spot', 'use spot prices where instance types have them')
    .option('--default-estimate <duration>', 'runtime of jobs without an estimate (default 60s)')
    .action((file: string, o: PlanCliOptions) => {
      const r = runPlan(file, o);
      process.stdout.write(r.text);
      if (r.exitCode !== EXIT.ok) {
        for (const n of r.plan.notes) process.stderr.write(`warren plan: ${n}\n`);
        process.exitCode = r.exitCode;
      }
    });

  const site = commandGroup(program, 'site', 'the sites (clusters, cloud regions) this server can plan workflows on');
  site
    .command('add')
    .description('add the sites, links and data locations of a platform file, or one cluster given by options')
    .argument('[file]', 'platform file (docs/platform.md)')
    .option('--name <name>', 'name of a cluster site to add')
    .option('--nodes <n>', 'nodes of the cluster')
    .option('--cores <n>', 'cores per node')
    .option('--memory <size>', 'memory per node (e.g. 192GiB)')
    .option('--gpus <n>', 'GPUs per node')
    .option('--speed <x>', 'core speed relative to the reference core (default 1)')
    .option('--price <p>', 'price per core-hour (default 0)')
    .option('--replace', 'replace sites that already exist')
    .option('--kind <kind>', 'cluster (default) or slurm: a Slurm cluster that exists already (docs/sites.md)')
    .option('--partition <name>', 'Slurm: the partition pilots or jobs go to')
    .option('--account <name>', 'Slurm: the account to charge')
    .option('--qos <name>', 'Slurm: the QoS')
    .option('--mode <mode>', 'Slurm: pilot (Warren agents as Slurm jobs, default) or direct (each job a Slurm job)')
    .option('--sbatch <path>', "Slurm: the path of sbatch (default: on PATH); Slurm's other commands beside it")
    .option('--ssh <host>', "Slurm: run Slurm's commands on this login node through ssh")
    .option('--max-pilots <n>', 'Slurm: most pilots at once (default 10)')
    .option('--pilot-cores <n>', 'Slurm: cores of a pilot (default 1)')
    .option('--pilot-memory <size>', 'Slurm: memory of a pilot (e.g. 64GiB)')
    .option('--pilot-walltime <duration>', 'Slurm: walltime of a pilot (default 1h)')
    .option('--slurm-conf <file>', 'Slurm: the slurm.conf of the site (SLURM_CONF of its commands)')
    .option('--no-check', 'add Slurm sites without checking them (sbatch, partition, account)')
    .action(async (file: string | undefined, o: SiteAddOptions) => {
      const r = siteAddPlan(file, o);
      // A Slurm site is checked before it is added: sbatch runs, the partition exists, the account is accepted.
      if (o.check !== false) {
        const slurm = r.added.map((n) => r.platform.sites[n]!).filter((s) => s.kind === 'slurm');
        if (slurm.length) {
          const { checkSlurmSite, slurmSettingsOfSite } = await import('../../sites/index.js');
          for (const s of slurm) await checkSlurmSite(slurmSettingsOfSite(s));
        }
      }
      writeAtomic(r.file, r.text);
      process.stdout.write(`added ${r.added.join(', ')} to ${r.file}\n`);
    });
  site
    .command('list')
    .description('list the sites, links and data locations of this server')
    .option('--json', 'print them as JSON')
    .action((o: { json?: boolean }) => {
      process.stdout.write(siteList(!!o.json));
    });
  site
    .command('remove')
    .description('remove a site and its links')
    .argument('<name>', 'site name')
    .action((name: string) => {
      siteRemove(name);
      process.stdout.write(`removed ${name}\n`);
    });
}
