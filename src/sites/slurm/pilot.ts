// Pilot mode (issue 14): each "instance" of a Slurm site is a Slurm job that runs `warren agent`.
// start() writes the pilot's batch script (the site's partition, account, QoS, walltime and
// size; `--deadline` so that a pilot that waited too long in the queue is removed by Slurm
// rather than starting with a dead join token) and submits it with `sbatch --parsable` (script
// on stdin); the agent joins the server with the token minted for it, takes work until it is
// idle for the site's idle exit or near its walltime, drains itself and exits. list() reads
// `squeue`; stop() is `scancel`. Slurm's scheduling cost is paid once per pilot, not per job.
import { WarrenError } from '../../common/index.js';
import type { InstanceRequest, InstanceState, InstanceView, SiteDriver } from '../driver.js';
import { checkSlurmSite, pilotJobOptions } from './check.js';
import { SlurmCommands, shellQuote } from './commands.js';
import type { SlurmSiteSettings } from './settings.js';

export const PILOT_PREFIX = 'warren-pilot-';

/** Slurm's job states (squeue %T) as an instance's. */
export function pilotState(slurm: string): InstanceState {
  switch (slurm) {
    case 'PENDING':
    case 'REQUEUED':
    case 'REQUEUE_HOLD':
    case 'SUSPENDED':
      return 'pending';
    case 'CONFIGURING':
    case 'RESIZING':
      return 'booting';
    case 'RUNNING':
      return 'running';
    case 'COMPLETING':
    case 'STAGE_OUT':
    case 'SIGNALING':
      return 'stopping';
    case 'COMPLETED':
    case 'CANCELLED':
    case 'TIMEOUT':
      return 'stopped';
    default:
      // FAILED, NODE_FAIL, BOOT_FAIL, DEADLINE, OUT_OF_MEMORY, PREEMPTED, REVOKED, SPECIAL_EXIT
      return 'failed';
  }
}

const REASONS: Record<string, string> = {
  CANCELLED: 'canceled (scancel)',
  TIMEOUT: 'its walltime ended',
  DEADLINE: 'it waited in the queue past its deadline',
  PREEMPTED: 'preempted by Slurm',
  NODE_FAIL: 'its Slurm node failed',
  BOOT_FAIL: 'its Slurm node did not boot',
  OUT_OF_MEMORY: 'out of memory',
  FAILED: 'the pilot failed (non-zero exit)',
};

function slurmDate(s: string | undefined): number | null {
  if (!s || s === 'N/A' || s === 'Unknown' || s === 'None') return null;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : null;
}

export interface SlurmPilotOptions {
  commands?: SlurmCommands;
  /** Where pilots' output goes (`--output=DIR/%x-%j.out`); default Slurm's (slurm-%j.out in sbatch's directory). */
  logDir?: string;
  /** Extra `warren agent` options of every pilot (e.g. timers in tests). */
  agentArgs?: string[];
}

export class SlurmPilotDriver implements SiteDriver {
  readonly kind = 'slurm';
  readonly commands: SlurmCommands;
  /** The pilots this driver submitted, by Slurm job id. */
  private readonly pilots = new Map<string, InstanceView>();

  constructor(readonly settings: SlurmSiteSettings, private readonly o: SlurmPilotOptions = {}) {
    if (settings.mode !== 'pilot') throw new WarrenError('SITE_SLURM_SETTINGS_INVALID', `Slurm site "${settings.name}" is in ${settings.mode} mode, not pilot mode`, { hint: 'use the direct-mode agent for it, or set mode: pilot' });
    this.commands = o.commands ?? new SlurmCommands(settings);
  }

  check(): Promise<void> {
    return checkSlurmSite(this.settings, this.commands);
  }

  /** The batch script of a pilot (its token is in it: Slurm keeps scripts readable by their user only). */
  pilotScript(req: InstanceRequest): string {
    const s = this.settings;
    const walltimeSec = req.walltimeSec ?? s.pilot.walltimeSec;
    const labels = { site: s.name, ...req.labels };
    const q = shellQuote;
    const agent = [
      s.warren,
      'agent',
      '--server', q(req.serverUrl),
      '--name', q(req.node),
      '--ca', '"$D/ca.pem"',
      '--data', '"$D/agent"',
      '--labels', q(Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',')),
      '--cores', String(s.pilot.cores),
      ...(s.pilot.memoryBytes !== undefined ? ['--memory', `${Math.floor(s.pilot.memoryBytes / (1 << 20))}MiB`] : []),
      '--idle-exit', `${s.pilot.idleExitSec}s`,
      '--walltime', `${walltimeSec}s`,
      '--walltime-margin', `${Math.min(s.pilot.marginSec, walltimeSec - 1)}s`,
      ...(this.o.agentArgs ?? []).map(q),
    ].join(' ');
    const ca = req.caPem.endsWith('\n') ? req.caPem : `${req.caPem}\n`;
    if (ca.includes('WARREN_CA_END')) throw new WarrenError('SITE_SLURM_SETTINGS_INVALID', `Slurm site "${s.name}": the CA given to pilot ${req.node} is not a PEM certificate`, { hint: "give the server's DATA/ca.pem" });
    return [
      '#!/bin/sh',
      `#SBATCH --job-name=${PILOT_PREFIX}${req.node}`,
      ...pilotJobOptions(s, walltimeSec).map((x) => `#SBATCH ${x}`),
      // Slurm removes a pilot that could not end by then: one that waited longer than queueWait.
      `#SBATCH --deadline=now+${s.pilot.queueWaitSec + walltimeSec}`,
      `#SBATCH --comment=warren-site=${s.name}`,
      ...(this.o.logDir ? [`#SBATCH --output=${this.o.logDir}/%x-%j.out`] : []),
      '# A Warren pilot (warren site, pilot mode): a node agent that leaves when idle or near its walltime.',
      'umask 077',
      'D="${TMPDIR:-/tmp}/warren-pilot-${SLURM_JOB_ID}"',
      'mkdir -p "$D" || exit 1',
      'cat > "$D/ca.pem" <<\'WARREN_CA_END\'',
      ca + 'WARREN_CA_END',
      `WARREN_JOIN_TOKEN=${q(req.joinToken)}`,
      'export WARREN_JOIN_TOKEN',
      'WARREN_HOME="$D/agent"',
      'export WARREN_HOME',
      // Not exec: the directory is removed after the agent ended (scancel: TERM reaches both).
      `${agent} &`,
      'pid=$!',
      "trap 'kill -TERM $pid 2>/dev/null' TERM INT",
      'wait $pid',
      'rc=$?',
      'while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done',
      'rm -rf "$D"',
      'exit $rc',
      '',
    ].join('\n');
  }

  async start(req: InstanceRequest): Promise<InstanceView> {
    const s = this.settings;
    const live = [...this.pilots.values()].filter((p) => p.state === 'pending' || p.state === 'booting' || p.state === 'running').length;
    if (live >= s.maxPilots) {
      throw new WarrenError('SITE_SLURM_MAX_PILOTS', `Slurm site "${s.name}" has ${live} pilots queued or running, its most (max pilots ${s.maxPilots}): pilot ${req.node} is not submitted`, { hint: 'wait for a pilot to end, stop one, or raise the site\'s max pilots' });
    }
    const requestedAt = Date.now();
    const out = await this.commands.must('sbatch', ['--parsable'], this.pilotScript(req));
    const id = out.trim().split(';')[0]!.trim();
    if (!/^\d+$/.test(id)) throw new WarrenError('SITE_SLURM_COMMAND_FAILED', `Slurm site "${s.name}": sbatch --parsable answered "${out.trim().slice(0, 200)}", not a job id`, { hint: 'check the Slurm version (22.05 or later)' });
    const view: InstanceView = { id, node: req.node, instanceType: `${s.pilot.cores}c`, spot: false, state: 'pending', requestedAt, runningAt: null, endedAt: null, reason: null };
    this.pilots.set(id, view);
    return { ...view };
  }

  /** The pilots of this site in Slurm's queue (also those of an earlier process), and those this driver started that Slurm forgot (ended). */
  async list(): Promise<InstanceView[]> {
    const s = this.settings;
    const out = await this.commands.must('squeue', ['-h', '-t', 'all', '-p', s.partition, '-o', '%i|%j|%T|%k|%V|%S|%e|%C']);
    const seen = new Set<string>();
    const now = Date.now();
    for (const line of out.split('\n')) {
      const [id, name, st, comment, submit, start, end, cpus] = line.trim().split('|');
      if (!id || !name?.startsWith(PILOT_PREFIX) || comment !== `warren-site=${s.name}`) continue;
      seen.add(id);
      const state = pilotState(st ?? '');
      const prev = this.pilots.get(id);
      const ended = state === 'stopped' || state === 'failed';
      const view: InstanceView = {
        id,
        node: name.slice(PILOT_PREFIX.length),
        instanceType: prev?.instanceType ?? `${cpus}c`,
        spot: false,
        state,
        requestedAt: prev?.requestedAt ?? slurmDate(submit) ?? now,
        runningAt: state === 'pending' ? null : (slurmDate(start) ?? prev?.runningAt ?? null),
        endedAt: ended ? (slurmDate(end) ?? prev?.endedAt ?? now) : null,
        reason: ended ? (REASONS[st ?? ''] ?? (st === 'COMPLETED' ? 'the pilot left (idle or near its walltime)' : (st ?? null))) : null,
      };
      this.pilots.set(id, view);
    }
    for (const [id, p] of this.pilots) {
      if (seen.has(id) || p.state === 'stopped' || p.state === 'failed') continue;
      // Slurm no longer lists it (purged after MinJobAge): it ended.
      this.pilots.set(id, { ...p, state: 'stopped', endedAt: p.endedAt ?? now, reason: p.reason ?? 'ended (no longer in the Slurm queue)' });
    }
    return [...this.pilots.values()].map((p) => ({ ...p }));
  }

  async stop(id: string): Promise<void> {
    if (!/^\d+$/.test(id)) throw new WarrenError('SITE_SLURM_COMMAND_FAILED', `Slurm site "${this.settings.name}": "${id}" is not a Slurm job id`, { hint: 'give an id that list() returned' });
    const r = await this.commands.run('scancel', [id]);
    // A job that ended already is not an error.
    if (r.code !== 0 && !/Invalid job id|already completing|completed/i.test(r.stderr)) {
      throw new WarrenError('SITE_SLURM_COMMAND_FAILED', `Slurm site "${this.settings.name}": scancel ${id} failed ${this.commands.where}: ${r.stderr.trim().slice(-300)}`, { hint: 'check that the Slurm controller answers (`scontrol ping`)' });
    }
    const p = this.pilots.get(id);
    if (p && p.state !== 'stopped' && p.state !== 'failed') this.pilots.set(id, { ...p, state: 'stopping', reason: 'canceled (scancel)' });
  }

  async close(): Promise<void> {
    const ids = [...this.pilots.values()].filter((p) => p.state !== 'stopped' && p.state !== 'failed').map((p) => p.id);
    if (ids.length) await this.commands.run('scancel', ids);
    this.pilots.clear();
  }
}
