// A Slurm site's settings (issue 14): where Slurm's commands run (this machine, or a login node
// through ssh), the partition, account and QoS jobs go to, the mode (pilot: Warren agents as
// Slurm jobs; direct: each Warren job a Slurm job), and the size of a pilot. Pure: validated
// here, used by the driver (./pilot.ts) and ./check.ts.
import { WarrenError } from '../../common/index.js';
import type { Site } from '../../scheduler/index.js';

export type SlurmMode = 'pilot' | 'direct';

export interface SlurmSiteSettings {
  kind: 'slurm';
  /** The site's name (in errors, labels and pilot job names). */
  name: string;
  /** Where `sbatch` is: an absolute path (squeue, sinfo, scancel, scontrol beside it), or undefined: on PATH. */
  sbatch?: string;
  /** Run Slurm's commands on this login node (`ssh HOST ...`; keys from the usual ssh setup) instead of here. */
  ssh?: string;
  partition: string;
  account?: string;
  qos?: string;
  mode: SlurmMode;
  /** Most pilots at once (queued or running). */
  maxPilots: number;
  pilot: {
    cores: number;
    /** Memory of a pilot, bytes (undefined: the partition's default). */
    memoryBytes?: number;
    /** The pilot's walltime (`--time`), seconds. */
    walltimeSec: number;
    /** Stop taking work this long before the walltime ends, seconds. */
    marginSec: number;
    /** Leave after this long without any task, seconds. */
    idleExitSec: number;
    /** Most seconds a pilot may wait in the queue (its join token lives this long plus its walltime; `--deadline`). */
    queueWaitSec: number;
  };
  /** The environment of Slurm's commands (e.g. SLURM_CONF). */
  env: Record<string, string>;
  /** How a pilot starts `warren` on a Slurm node (shell words), default `warren`. */
  warren: string;
}

export const SLURM_DEFAULTS = { maxPilots: 10, cores: 1, walltimeSec: 3600, marginSec: 120, idleExitSec: 60, queueWaitSec: 3600, warren: 'warren' } as const;

/** Slurm's `--time` form of seconds: D-HH:MM:SS, rounded up to a whole minute (Slurm's unit). */
export function slurmTime(sec: number): string {
  const min = Math.max(1, Math.ceil(sec / 60));
  const d = Math.floor(min / 1440);
  const h = Math.floor((min % 1440) / 60);
  const m = min % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d > 0 ? `${d}-` : ''}${two(h)}:${two(m)}:00`;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const SLURM_WORD = /^[A-Za-z0-9_.:+-]{1,128}$/;

/** Check settings made in code or read from a file (`where`: e.g. the file's position), SITE_SLURM_SETTINGS_INVALID naming the site. */
export function validateSlurmSettings(s: SlurmSiteSettings, where = ''): SlurmSiteSettings {
  const bad = (what: string, hint: string): never => {
    throw new WarrenError('SITE_SLURM_SETTINGS_INVALID', `${where ? `${where}: ` : ''}Slurm site "${s.name}": ${what}`, { hint });
  };
  if (!NAME.test(s.name)) bad('the name must be letters, digits, dots, dashes and underscores', 'e.g. name: hpc1');
  if (s.sbatch !== undefined && !s.sbatch.startsWith('/')) bad(`sbatch must be an absolute path, not "${s.sbatch}"`, 'e.g. sbatch: /usr/bin/sbatch (or leave it out: sbatch on PATH)');
  if (s.ssh !== undefined && !/^[A-Za-z0-9_.@-]{1,255}$/.test(s.ssh)) bad(`ssh must be a host (or user@host), not "${s.ssh}"`, 'e.g. ssh: login.hpc.example.org');
  for (const [k, v] of [['partition', s.partition], ['account', s.account], ['qos', s.qos]] as const) {
    if (v !== undefined && !SLURM_WORD.test(v)) bad(`${k} "${v}" is not a Slurm name`, `give the ${k} as \`sinfo\`/\`sacctmgr\` show it`);
  }
  if (!s.partition) bad('no partition', 'e.g. partition: batch (`sinfo -s` lists them)');
  if (s.mode !== 'pilot' && s.mode !== 'direct') bad(`mode must be pilot or direct, not "${String(s.mode)}"`, 'pilot: Warren agents run as Slurm jobs; direct: each Warren job is a Slurm job');
  if (!Number.isInteger(s.maxPilots) || s.maxPilots < 1) bad(`max pilots must be a whole number >= 1, not ${s.maxPilots}`, 'e.g. max-pilots: 10');
  const p = s.pilot;
  if (!Number.isInteger(p.cores) || p.cores < 1) bad(`pilot cores must be a whole number >= 1, not ${p.cores}`, 'e.g. pilot-cores: 16');
  if (p.memoryBytes !== undefined && !(p.memoryBytes >= 1 << 20)) bad('pilot memory must be at least 1MiB', 'e.g. pilot-memory: 32GiB');
  if (!(p.walltimeSec >= 60)) bad(`the pilot walltime must be at least 1m (Slurm counts minutes), not ${p.walltimeSec}s`, 'e.g. pilot-walltime: 4h');
  if (!(p.marginSec >= 0) || p.marginSec >= p.walltimeSec) bad(`the walltime margin (${p.marginSec}s) must be below the walltime (${p.walltimeSec}s)`, 'e.g. pilot-walltime: 4h with a margin of 5m');
  if (!(p.idleExitSec > 0)) bad('the pilot idle exit must be above 0', 'e.g. pilot-idle-exit: 60s');
  if (!(p.queueWaitSec > 0)) bad('the pilot queue wait must be above 0', 'e.g. pilot-queue-wait: 1h');
  for (const k of Object.keys(s.env)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) bad(`env "${k}" is not a variable name`, 'e.g. env: { SLURM_CONF: /etc/slurm/other.conf }');
  if (!s.warren.trim()) bad('warren (the command that starts warren on a Slurm node) is empty', 'e.g. warren: /opt/warren/bin/warren');
  return s;
}

/** Settings from the few values a user gives, with the defaults. */
export function slurmSettings(o: { name: string; partition: string } & Partial<Omit<SlurmSiteSettings, 'pilot' | 'kind'>> & { pilot?: Partial<SlurmSiteSettings['pilot']> }): SlurmSiteSettings {
  const d = SLURM_DEFAULTS;
  return validateSlurmSettings({
    kind: 'slurm',
    name: o.name,
    ...(o.sbatch !== undefined ? { sbatch: o.sbatch } : {}),
    ...(o.ssh !== undefined ? { ssh: o.ssh } : {}),
    partition: o.partition,
    ...(o.account !== undefined ? { account: o.account } : {}),
    ...(o.qos !== undefined ? { qos: o.qos } : {}),
    mode: o.mode ?? 'pilot',
    maxPilots: o.maxPilots ?? d.maxPilots,
    pilot: {
      cores: o.pilot?.cores ?? d.cores,
      ...(o.pilot?.memoryBytes !== undefined ? { memoryBytes: o.pilot.memoryBytes } : {}),
      walltimeSec: o.pilot?.walltimeSec ?? d.walltimeSec,
      marginSec: o.pilot?.marginSec ?? d.marginSec,
      idleExitSec: o.pilot?.idleExitSec ?? d.idleExitSec,
      queueWaitSec: o.pilot?.queueWaitSec ?? d.queueWaitSec,
    },
    env: o.env ?? {},
    warren: o.warren ?? d.warren,
  });
}

/** How long a pilot's join token must stay valid: it may wait in the queue, then it joins at its start. */
export function pilotTokenTtlSec(s: SlurmSiteSettings): number {
  return s.pilot.queueWaitSec + 60;
}

/** The settings of a `kind: slurm` site of a platform file (src/scheduler/platform.ts). */
export function slurmSettingsOfSite(site: Site): SlurmSiteSettings {
  if (site.kind !== 'slurm') throw new WarrenError('SITE_SLURM_SETTINGS_INVALID', `site "${site.name}" is a ${site.kind} site, not a Slurm site`, { hint: 'give a site of kind slurm' });
  return slurmSettings({
    name: site.name,
    partition: site.partition,
    mode: site.mode,
    maxPilots: site.maxPilots,
    env: site.env,
    pilot: site.pilot,
    ...(site.account !== undefined ? { account: site.account } : {}),
    ...(site.qos !== undefined ? { qos: site.qos } : {}),
    ...(site.sbatch !== undefined ? { sbatch: site.sbatch } : {}),
    ...(site.ssh !== undefined ? { ssh: site.ssh } : {}),
    ...(site.warren !== undefined ? { warren: site.warren } : {}),
  });
}
