// Last-chance cleanup for test helpers that make things outside the process (network
// namespaces, a PostgreSQL server): whatever is still registered when the process ends is
// undone, even when a test threw, the runner called process.exit(), or the process got
// SIGINT / SIGTERM / SIGHUP. (SIGKILL cannot be caught: netns.ts and pg.ts also sweep
// what a dead process left when they are next used.)
//
//   const unregister = atProcessExit(() => removeItSync());   // must be synchronous
//   ...; unregister();                                          // once removed normally
import { setTimeout as sleep } from 'node:timers/promises';

type Fn = () => void;

const pending = new Set<Fn>();
let installed = false;

function runAll(): void {
  for (const fn of [...pending]) {
    pending.delete(fn);
    try {
      fn();
    } catch {
      // best effort: the others still run
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runAll();
  // Another listener (e.g. the test runner) decides how to end; alone, end as the signal would.
  if (process.listenerCount(sig) === 1) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
}

/** Runs `fn` (synchronous) when the process ends unless the returned function is called first. */
export function atProcessExit(fn: Fn): () => void {
  install();
  pending.add(fn);
  return () => {
    pending.delete(fn);
  };
}

/** Whether a process with this pid exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Blocks the thread for `ms` (for synchronous cleanup paths only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls `cond` every `everyMs` until it is true or `timeoutMs` passed; returns its last value. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await sleep(everyMs);
  }
}
