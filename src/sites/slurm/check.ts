// Before anything is submitted (issue 14, bad input): the site's sbatch runs, its partition
// exists, and Slurm accepts a job of the site's account, QoS and pilot size (`sbatch
// --test-only`, which asks the controller and submits nothing). Each problem is a SITE_SLURM_*
// error naming the site (exit 2; an unreachable controller: exit 1).
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { WarrenError } from '../../common/index.js';
import { SlurmCommands } from './commands.js';
import { slurmTime, type SlurmSiteSettings } from './settings.js';

function onPath(cmd: string, path: string | undefined): string | null {
  for (const d of (path ?? '').split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return join(d, cmd);
    } catch {
      /* next */
    }
  }
  return null;
}

/** The job options of a pilot (also what --test-only checks). */
export function pilotJobOptions(s: SlurmSiteSettings, walltimeSec = s.pilot.walltimeSec): string[] {
  return [
    `--partition=${s.partition}`,
    ...(s.account ? [`--account=${s.account}`] : []),
    ...(s.qos ? [`--qos=${s.qos}`] : []),
    `--time=${slurmTime(walltimeSec)}`,
    '--nodes=1',
    '--ntasks=1',
    `--cpus-per-task=${s.pilot.cores}`,
    ...(s.pilot.memoryBytes !== undefined ? [`--mem=${Math.ceil(s.pilot.memoryBytes / (1 << 20))}M`] : []),
  ];
}

export async function checkSlurmSite(s: SlurmSiteSettings, cmds = new SlurmCommands(s)): Promise<void> {
  const site = `Slurm site "${s.name}"`;
  // 1. sbatch is there.
  if (!s.ssh) {
    if (s.sbatch) {
      try {
        accessSync(s.sbatch, constants.X_OK);
      } catch (e) {
        throw new WarrenError('SITE_SLURM_SBATCH_MISSING', `${site}: sbatch ${s.sbatch} ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be run'} on this machine`, {
          hint: 'give the path of Slurm\'s sbatch (`command -v sbatch`), e.g. /usr/bin/sbatch, or an ssh login node where it runs',
        });
      }
    } else if (!onPath('sbatch', s.env.PATH ?? process.env.PATH)) {
      throw new WarrenError('SITE_SLURM_SBATCH_MISSING', `${site}: sbatch is not on PATH on this machine`, {
        hint: "install Slurm's client commands (Debian: slurm-client), or give the site's sbatch path or an ssh login node",
      });
    }
  }
  // 2. The controller answers, and the partition is one of its.
  const r = await cmds.run('sinfo', ['-h', '-o', '%P']);
  if (r.code !== 0) {
    if (s.ssh && r.code === 255) {
      throw new WarrenError('SITE_SLURM_UNREACHABLE', `${site}: cannot log in to ${s.ssh} with ssh: ${r.stderr.trim().slice(-300)}`, { hint: `check that \`ssh ${s.ssh}\` logs in without a prompt (keys, known_hosts)` });
    }
    if (s.ssh && r.code === 127) {
      throw new WarrenError('SITE_SLURM_SBATCH_MISSING', `${site}: Slurm's commands are not found on ${s.ssh}: ${r.stderr.trim().slice(-300)}`, { hint: 'give the site the path of sbatch on the login node' });
    }
    throw new WarrenError('SITE_SLURM_UNREACHABLE', `${site}: sinfo failed ${cmds.where} (exit ${r.code ?? 'by a signal'}): ${r.stderr.trim().slice(-300)}`, {
      hint: 'check that the Slurm controller runs and answers (`scontrol ping`) and that the site\'s env (SLURM_CONF) names its slurm.conf',
    });
  }
  const parts = [...new Set(r.stdout.split('\n').map((l) => l.trim().replace(/\*$/, '')).filter(Boolean))];
  if (!parts.includes(s.partition)) {
    throw new WarrenError('SITE_SLURM_PARTITION_UNKNOWN', `${site}: partition "${s.partition}" does not exist (the partitions are ${parts.length ? parts.join(', ') : 'none'})`, {
      hint: `give one of ${parts.join(', ') || 'the partitions `sinfo -s` lists'} as the site's partition`,
    });
  }
  // 3. A pilot of the site's account, QoS and size would be accepted (nothing is submitted).
  const t = await cmds.run('sbatch', ['--test-only', ...pilotJobOptions(s), '--job-name=warren-check', '--wrap', 'true']);
  if (t.code !== 0) {
    const why = t.stderr.replace(/^sbatch: error: /gm, '').trim().split('\n').filter(Boolean).join('; ').slice(-500);
    if (/account/i.test(why)) {
      throw new WarrenError('SITE_SLURM_ACCOUNT_REFUSED', `${site}: Slurm refuses account "${s.account ?? '(the default)'}" in partition ${s.partition}: ${why}`, {
        hint: 'give an account you may charge (`sacctmgr show associations user=$USER` lists them), or none for your default account',
      });
    }
    throw new WarrenError('SITE_SLURM_REFUSED', `${site}: Slurm refuses a pilot of ${s.pilot.cores} cores${s.pilot.memoryBytes ? `, ${Math.ceil(s.pilot.memoryBytes / (1 << 20))} MiB` : ''} for ${slurmTime(s.pilot.walltimeSec)} in partition ${s.partition}${s.qos ? ` with QoS ${s.qos}` : ''}: ${why}`, {
      hint: 'make the pilot fit the partition (`scontrol show partition` shows its limits: nodes, cores, memory, MaxTime) or give a QoS that allows it',
    });
  }
}
