// The baselines' loops, shared by the benchmarks: `n` tasks, `conc` at a time, timed.
import { spawn } from 'node:child_process';

/** Run `n` tasks, at most `conc` at once, each started by `start(i)` and over when its promise settles. Resolves with the wall time in ms. */
export function concurrently(n: number, conc: number, start: (i: number) => Promise<unknown>): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let started = 0;
    let done = 0;
    const next = (): void => {
      if (started >= n) return;
      const i = started++;
      void start(i).finally(() => {
        done++;
        if (done === n) resolve(performance.now() - t0);
        else next();
      });
    };
    for (let i = 0; i < conc; i++) next();
  });
}

/** Bare baseline: spawn /bin/true `n` times, `conc` at a time (Node's child_process). */
export function bareSpawn(n: number, conc: number): Promise<number> {
  return concurrently(n, conc, () => new Promise<void>((r) => spawn('/bin/true', [], { stdio: 'ignore' }).on('exit', () => r())));
}
