// TEMP stand-ins (drop at merge): the runtime helper implements these for real.
import { readFileSync } from 'node:fs';
import { Spawner } from './spawner.js';

const alive = (pid: number): boolean => {
  try {
    if (/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'))) return false; // a zombie nobody reaped yet
  } catch {
    return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export async function stopRecordedAttempt(rec: { attemptId: string; pid: number | null; cgroup: string | null }): Promise<'stopped' | 'gone'> {
  if (!rec.pid) return 'gone';
  let env: string;
  try {
    env = readFileSync(`/proc/${rec.pid}/environ`, 'latin1');
  } catch {
    return 'gone';
  }
  if (!env.split('\u0000').includes(`WARREN_ATTEMPT_ID=${rec.attemptId}`)) return 'gone';
  try {
    process.kill(-rec.pid, 'SIGKILL');
  } catch {
    return 'gone';
  }
  for (let i = 0; i < 200 && alive(rec.pid); i++) await new Promise((r) => setTimeout(r, 10));
  return 'stopped';
}

export function jobIsolation(): { mode: 'cgroup-v2' | 'cgroup-v1' | 'process-group'; reason?: string } {
  return { mode: 'process-group', reason: 'stand-in' };
}

/** Spawner `close()` stand-in. */
export async function closeSpawner(): Promise<void> {
  await (Spawner.get() as unknown as { close?: () => Promise<void> } | null)?.close?.();
}
