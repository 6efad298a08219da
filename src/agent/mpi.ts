// Multinode (MPI) jobs on a node: what the agent needs to start a gang's launcher and its
// daemons with no ssh between nodes (docs/mpi.md).
//
//   launcher node   the job's process is `warren-mpi launch mpirun ... warren-mpi rank CMD`;
//                   mpirun (OpenMPI, plm_rsh_agent) or mpiexec (Hydra, -launcher-exec) calls
//                   the hook `rsh HOST ORTED-OR-PROXY...`, which asks this agent over the
//                   gang's Unix socket; the agent has the daemon started on HOST
//   member node     no process of its own: each daemon the launcher asks for runs here as a
//                   copy of the job (its image, mounts, cgroup, user), its output in the job's log
//
// The C helper (./mpi/warren-mpi.c, built into dist/bin/warren-mpi, static) is bind-mounted
// into containers at /.warren/bin; the gang's directory (socket, hostfile, `rsh` link) at
// /.warren/mpi.

import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, symlinkSync, writeFileSync, chownSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WarrenError } from '../common/index.js';
import type { JobSpec } from '../workflow/index.js';
import type { BindMount } from '../runtime/index.js';

/** dist/bin/warren-mpi, next to the compiled sources. */
export function mpiHelperPath(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/src/agent
  return process.env.WARREN_MPI_HELPER ?? join(here, '..', '..', 'bin', 'warren-mpi');
}

/** Where the gang's directory and the helper are seen inside a container. */
export const IN_CONTAINER = { dir: '/.warren/mpi', bin: '/.warren/bin' } as const;

/** The addresses this machine's peers could reach it at: IPv4 first, no loopback or link-local. */
export function nodeAddresses(): string[] {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv4') v4.push(a.address);
      else if (!a.address.toLowerCase().startsWith('fe80')) v6.push(a.address);
    }
  }
  return [...v4, ...v6];
}

export type Implementation = 'openmpi' | 'mpich';

/** The implementation of a multinode job, or the refusal of one Warren cannot launch. */
export function implementationOf(spec: JobSpec): Implementation {
  const impl = spec.multinode?.implementation ?? 'openmpi';
  if (impl === 'openmpi' || impl === 'mpich') return impl;
  throw new WarrenError('AGENT_MPI_UNSUPPORTED', `job ${spec.name}: multinode implementation "${impl}" is not supported yet`, {
    hint: 'use implementation: openmpi or implementation: mpich',
  });
}

export interface GangHost {
  /** The name in the hostfile (what the hook is asked for). */
  host: string;
  /** The node it is (a cluster node's name, or a place on this machine). */
  node: string;
}

export interface LauncherPlan {
  argv: string[];
  env: Record<string, string>;
  /** The hostfile's text. */
  hostfile: string;
}

/**
 * The launcher's command and environment. `hosts[0]` is the launcher's own (the host name its
 * process sees, so that mpirun starts the first node's ranks itself); `paths` are as the job
 * sees them (container or host).
 */
export function launcherPlan(o: {
  impl: Implementation;
  hosts: GangHost[];
  coresPerNode: number;
  command: string[];
  /** The launcher node's address (Hydra's -localhost: its daemons connect back to it). */
  address: string;
  paths: { helper: string; rsh: string; hostfile: string };
  asRoot: boolean;
}): LauncherPlan {
  const ranks = o.hosts.length * o.coresPerNode;
  const env: Record<string, string> = {};
  let argv: string[];
  let hostfile: string;
  if (o.impl === 'openmpi') {
    hostfile = o.hosts.map((h) => `${h.host} slots=${o.coresPerNode}`).join('\n') + '\n';
    Object.assign(env, {
      // Every daemon through the hook (no tree spawn: its daemons would start their own,
      // outside any agent), attached to it (no --daemonize: the daemon is what the agent supervises).
      OMPI_MCA_plm: 'rsh',
      OMPI_MCA_plm_rsh_agent: o.paths.rsh,
      OMPI_MCA_plm_rsh_no_tree_spawn: '1',
      OMPI_MCA_orte_leave_session_attached: '1',
      OMPI_MCA_plm_rsh_disable_qrsh: '1',
      OMPI_MCA_orte_default_hostfile: o.paths.hostfile,
    });
    if (o.asRoot) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
    argv = [o.paths.helper, 'launch', 'mpirun', '--hostfile', o.paths.hostfile, '-np', String(ranks), o.paths.helper, 'rank', ...o.command];
  } else {
    hostfile = o.hosts.map((h) => `${h.host}:${o.coresPerNode}`).join('\n') + '\n';
    argv = [o.paths.helper, 'launch', 'mpiexec.hydra:mpiexec', '-f', o.paths.hostfile, '-n', String(ranks), '-launcher', 'rsh', '-launcher-exec', o.paths.rsh, '-localhost', o.address, o.paths.helper, 'rank', ...o.command];
  }
  return { argv, env, hostfile };
}

/** What a gang's socket hears from the job (the hook, a rank wrapper, the launch helper). */
export interface GangSocketEvents {
  launch(c: { launchId: string; host: string; command: string; reply: LaunchReply }): void;
  rankExit(r: { rank: number | null; exitCode: number | null; signal: number | null }): void;
  launcherMissing(l: { launcher: string; path: string }): void;
}

/** The answer to one hook: print lines, then its exit status; `onClose` when the hook left first. */
export interface LaunchReply {
  message(text: string): void;
  exit(status: number): void;
  onClose(f: () => void): void;
}

/** A gang's directory on this node: the socket the job talks to, the hostfile, the `rsh` link. */
export class GangDir {
  readonly dir: string;
  readonly socket: string;
  private server: Server | null = null;
  private readonly conns = new Set<Socket>();
  private seq = 0;

  constructor(home: string, attemptId: string) {
    const h = createHash('sha256').update(attemptId).digest('hex').slice(0, 16);
    // A Unix socket path holds at most 107 bytes: short, under the agent's home when it fits.
    let dir = join(home, 'mpi', h);
    if (Buffer.byteLength(join(dir, 's')) > 100) dir = join(tmpdir(), `warren-mpi-${h}`);
    this.dir = dir;
    this.socket = join(dir, 's');
  }

  /** Make the directory (owned by the job's user), the `rsh` link to the helper, and listen. */
  async open(o: { helperAsSeen: string; owner?: { uid: number; gid: number }; hostfile?: string }, ev: GangSocketEvents): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    symlinkSync(o.helperAsSeen, join(this.dir, 'rsh'));
    if (o.hostfile !== undefined) writeFileSync(join(this.dir, 'hostfile'), o.hostfile, { mode: 0o644 });
    const server = createServer((c) => this.accept(c, ev));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socket, () => resolve());
    });
    if (o.owner) {
      chownSync(this.dir, o.owner.uid, o.owner.gid);
      chownSync(this.socket, o.owner.uid, o.owner.gid);
    }
  }

  mounts(helperDir: string): BindMount[] {
    return [
      { host: this.dir, target: IN_CONTAINER.dir, readOnly: false },
      { host: helperDir, target: IN_CONTAINER.bin, readOnly: true },
    ];
  }

  private accept(c: Socket, ev: GangSocketEvents): void {
    this.conns.add(c);
    c.on('close', () => this.conns.delete(c));
    c.on('error', () => c.destroy());
    let buf = '';
    let replied = false;
    const closers: (() => void)[] = [];
    c.on('close', () => {
      if (!replied) for (const f of closers) f();
    });
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      if (buf.length > 1 << 20) return c.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: { op?: string; host?: string; command?: string; rank?: number | null; code?: number | null; signal?: number | null; launcher?: string; path?: string };
        try {
          m = JSON.parse(line) as typeof m;
        } catch {
          c.destroy();
          return;
        }
        if (m.op === 'launch' && typeof m.host === 'string' && typeof m.command === 'string') {
          const launchId = String(++this.seq);
          const reply: LaunchReply = {
            message: (t) => {
              if (!replied && !c.destroyed) for (const l of t.split('\n')) c.write(`M ${l}\n`);
            },
            exit: (s) => {
              if (replied) return;
              replied = true;
              if (!c.destroyed) c.end(`E ${s & 0xff}\n`);
            },
            onClose: (f) => closers.push(f),
          };
          ev.launch({ launchId, host: m.host, command: m.command, reply });
        } else if (m.op === 'rank-exit') {
          ev.rankExit({ rank: typeof m.rank === 'number' ? m.rank : null, exitCode: typeof m.code === 'number' ? m.code : null, signal: typeof m.signal === 'number' ? m.signal : null });
          replied = true;
          c.end();
        } else if (m.op === 'launcher-missing' && typeof m.launcher === 'string') {
          ev.launcherMissing({ launcher: m.launcher, path: typeof m.path === 'string' ? m.path : '' });
          replied = true;
          c.end();
        } else c.destroy();
      }
    });
  }

  /** Stop listening, drop the hooks still connected, remove the directory. */
  close(): void {
    this.server?.close();
    this.server = null;
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
