// Slurm's commands for one site: run here (sbatch on PATH or at the settings' path, the other
// commands beside it) or on a login node through `ssh HOST` (BatchMode: keys, never a prompt),
// with the site's environment (e.g. SLURM_CONF). A batch script goes on stdin.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { WarrenError } from '../../common/index.js';
import type { SlurmSiteSettings } from './settings.js';

export interface SlurmResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export type SlurmCommand = 'sbatch' | 'squeue' | 'sinfo' | 'scancel' | 'scontrol' | 'sacct' | 'srun';

/** A word for /bin/sh, quoted unless it is plain. */
export function shellQuote(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

export class SlurmCommands {
  constructor(private readonly s: SlurmSiteSettings, private readonly timeoutMs = 60_000) {}

  /** The program for `cmd`: beside the settings' sbatch, else the name (found on PATH). */
  program(cmd: SlurmCommand): string {
    if (!this.s.sbatch) return cmd;
    return cmd === 'sbatch' ? this.s.sbatch : join(dirname(this.s.sbatch), cmd);
  }

  /** Where the commands run, for messages: "here" or "on login.example.org (ssh)". */
  get where(): string {
    return this.s.ssh ? `on ${this.s.ssh} (ssh)` : 'here';
  }

  /** Run a command to its end. ENOENT (a missing program) is SITE_SLURM_SBATCH_MISSING naming it. */
  run(cmd: SlurmCommand, args: string[], input?: string): Promise<SlurmResult> {
    const prog = this.program(cmd);
    let file: string;
    let argv: string[];
    let env: NodeJS.ProcessEnv;
    if (this.s.ssh) {
      const remote = ['env', ...Object.entries(this.s.env).map(([k, v]) => `${k}=${v}`), prog, ...args].map(shellQuote).join(' ');
      file = 'ssh';
      argv = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', this.s.ssh, remote];
      env = process.env;
    } else {
      file = prog;
      argv = args;
      env = { ...process.env, ...this.s.env };
    }
    return new Promise((resolve, reject) => {
      const p = spawn(file, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), this.timeoutMs);
      p.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (e.code === 'ENOENT') {
          reject(
            new WarrenError('SITE_SLURM_SBATCH_MISSING', `Slurm site "${this.s.name}": ${file === 'ssh' ? 'ssh' : prog} is not found ${this.where}${file === 'ssh' ? '' : this.s.sbatch ? '' : ' (on PATH)'}`, {
              hint: file === 'ssh' ? 'install the OpenSSH client, or give the site a local sbatch' : this.s.sbatch ? `give the site's sbatch as the path of Slurm's sbatch (\`command -v sbatch\` on a login node), e.g. --sbatch /usr/bin/sbatch` : 'install Slurm\'s client commands (Debian: slurm-client), or give the site\'s sbatch path or an ssh login node',
            }),
          );
        } else reject(new WarrenError('SITE_SLURM_COMMAND_FAILED', `Slurm site "${this.s.name}": cannot run ${prog} ${this.where}: ${e.message}`, { hint: 'check that the program can be run by this user' }));
      });
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      p.stdin.on('error', () => {});
      p.stdin.end(input ?? '');
    });
  }

  /** Run it; a non-zero exit is SITE_SLURM_COMMAND_FAILED with its stderr. */
  async must(cmd: SlurmCommand, args: string[], input?: string): Promise<string> {
    const r = await this.run(cmd, args, input);
    if (r.code !== 0) {
      throw new WarrenError('SITE_SLURM_COMMAND_FAILED', `Slurm site "${this.s.name}": \`${cmd} ${args.join(' ')}\` failed ${this.where} (exit ${r.code ?? 'by a signal'}): ${(r.stderr || r.stdout).trim().slice(-500)}`, {
        hint: r.code === 255 && this.s.ssh ? `check that \`ssh ${this.s.ssh}\` logs in without a prompt` : 'check that the Slurm controller answers (`sinfo`, `scontrol ping`)',
      });
    }
    return r.stdout;
  }
}
