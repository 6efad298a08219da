// How a container's end is reported: pure, from runc's exit status and what the runtime
// saw (its own kill, the cgroup's memory counters, runc's error log).
import { constants as osConstants } from 'node:os';
import { formatBytes } from '../../common/index.js';
import type { ExitInfo } from '../types.js';

const SIGNAL_NAMES: Record<number, string> = Object.fromEntries(Object.entries(osConstants.signals).map(([k, v]) => [v, k]));

export interface ExitFacts {
  /** runc's exit status: the job's, or 128+N when it died of signal N. */
  status: number;
  /** Set when Warren stopped it. */
  killReason: 'canceled' | 'timeout' | null;
  timeoutSec?: number;
  /** Memory limit and what the task's cgroup says (absent: no limit enforced). */
  memory?: { limitBytes: number; mode: 'v1' | 'v2'; oomKills: number; limitHits: number };
  /** runc's own error when it failed to start the job (read only for non-zero statuses). */
  runcError?: () => string | undefined;
  containerId: string;
}

export function classifyExit(f: ExitFacts): Omit<ExitInfo, 'durationMs'> {
  const { status } = f;
  const sigName = status > 128 && status < 128 + 65 ? (SIGNAL_NAMES[status - 128] ?? null) : null;
  const exitCode = sigName ? null : status;
  if (f.killReason) {
    return {
      exitCode,
      signal: sigName,
      reason: f.killReason,
      ...(f.killReason === 'timeout' ? { message: `killed after the ${f.timeoutSec}s timeout (policy.timeout.execute)` } : {}),
    };
  }
  if (f.memory && status !== 0) {
    const m = f.memory;
    const limit = formatBytes(m.limitBytes);
    // v2: the kernel's own count of OOM kills. v1: killed by SIGKILL (not from Warren)
    // while usage was at the limit.
    const oom = m.oomKills > 0 || (m.mode === 'v1' && m.limitHits > 0 && sigName === 'SIGKILL');
    if (oom) {
      return { exitCode, signal: sigName, reason: 'oom', message: `out of memory: killed by the kernel for going over its ${limit} memory limit (resource.memory.size); raise the limit or use less memory` };
    }
    if (m.limitHits > 0) {
      return { exitCode, signal: sigName, reason: sigName ? 'signal' : 'exit', message: `the job reached its ${limit} memory limit (a process may have been killed for being out of memory)` };
    }
  }
  if (status !== 0) {
    const failure = f.runcError?.();
    if (failure) return { exitCode: null, signal: null, reason: 'spawn-error', message: `container ${f.containerId} did not start: ${failure}` };
  }
  if (sigName) return { exitCode: null, signal: sigName, reason: 'signal' };
  return { exitCode: status, signal: null, reason: 'exit' };
}
