// What `warren run` shows while it works. On a terminal: one line per job (a task array
// gets a progress bar), redrawn in place ten times a second. Elsewhere (CI logs, pipes):
// plain, append-only lines for job starts and ends and every failure.

import { existsSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { formatDuration } from '../common/index.js';
import { TERMINAL, type UnitSnapshot } from '../engine/index.js';
import type { Workflow } from '../workflow/index.js';
import { logPaths } from '../agent/index.js';

interface JobLine {
  name: string;
  kind: UnitSnapshot['kind'];
  total: number;
  counts: Record<UnitSnapshot['state'], number>;
  startedAt: number | null;
  endedAt: number | null;
  /** For single-unit jobs: its attempt and message. */
  attempt: number;
  printedState: string;
}

const emptyCounts = (): JobLine['counts'] => ({ pending: 0, ready: 0, starting: 0, running: 0, succeeded: 0, failed: 0, canceled: 0, skipped: 0 });

/** Last `n` lines of a file (reads at most 8 KiB from the end). */
export function tailLines(path: string, n: number): string[] {
  if (!existsSync(path)) return [];
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 8192);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8').split('\n').filter((l) => l.length > 0 && !l.startsWith('--- warren: attempt')).slice(-n);
  } finally {
    closeSync(fd);
  }
}

export class RunView {
  private readonly jobs = new Map<string, JobLine>();
  private readonly units = new Map<string, UnitSnapshot>();
  private timer: NodeJS.Timeout | null = null;
  private drawnLines = 0;
  private readonly messages: string[] = [];
  private readonly t0 = Date.now();
  private runDir = '';
  private progress = new Map<string, string>();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly live: boolean,
    private readonly quiet = false,
  ) {}

  private id = '';

  private services = new Set<string>();

  start(id: string, runDir: string, units: UnitSnapshot[], wf?: Workflow): void {
    this.runDir = runDir;
    if (wf) for (const j of Object.values(wf.jobs)) if (j.service) this.services.add(j.name);
    this.id = id;
    for (const u of units) this.add(u);
    // Tasks of arrays that have no row yet (they get one as they start): counted as pending.
    if (wf) {
      for (const j of Object.values(wf.jobs)) {
        if (!j.taskArray) continue;
        const total = j.taskArray.end - j.taskArray.start + 1;
        let line = this.jobs.get(j.name);
        if (!line) {
          line = { name: j.name, kind: 'job', total: 0, counts: emptyCounts(), startedAt: null, endedAt: null, attempt: 0, printedState: '' };
          this.jobs.set(j.name, line);
        }
        const missing = total - line.total;
        if (missing > 0) {
          line.total += missing;
          line.counts.pending += missing;
        }
      }
      // Jobs in the file's order.
      const order = new Map(Object.keys(wf.jobs).map((k, i) => [k, i]));
      const sorted = [...this.jobs].sort((a, b) => (order.get(a[0]) ?? -1) - (order.get(b[0]) ?? -1));
      this.jobs.clear();
      for (const [k, v] of sorted) this.jobs.set(k, v);
    }
    if (this.quiet) return;
    this.line(`workflow ${id}: ${this.jobs.size} job(s), ${runDir ? `logs in ${runDir}/logs` : `logs: \`warren logs ${id} JOB\``}`);
    if (this.live) {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
    }
  }

  private add(u: UnitSnapshot): void {
    this.units.set(u.key, u);
    let j = this.jobs.get(u.job);
    const name = u.kind === 'ingress' ? `ingress ${u.job}` : u.kind === 'egress' ? 'egress' : u.job;
    if (!j) {
      j = { name, kind: u.kind, total: 0, counts: emptyCounts(), startedAt: null, endedAt: null, attempt: 0, printedState: '' };
      this.jobs.set(u.job, j);
    }
    j.total++;
    j.counts[u.state]++;
  }

  unit(u: UnitSnapshot): void {
    const j = this.jobs.get(u.job);
    if (!j) return;
    // A task without a row until now was counted as pending.
    const prevState = this.units.get(u.key)?.state ?? (u.task !== null ? 'pending' : null);
    if (prevState === null) return;
    j.counts[prevState]--;
    j.counts[u.state]++;
    // Memory stays flat over a million tasks: a task that ended is only counted (a retry
    // goes back to pending, not through a terminal state).
    if (u.task !== null && TERMINAL.has(u.state)) this.units.delete(u.key);
    else this.units.set(u.key, u);
    j.attempt = Math.max(j.attempt, u.attempt);
    if (u.startedAt !== null && (j.startedAt === null || u.startedAt < j.startedAt)) j.startedAt = u.startedAt;
    if (u.endedAt !== null) j.endedAt = Math.max(j.endedAt ?? 0, u.endedAt);
    if (this.quiet) return;
    if (u.state === 'failed') this.failure(u);
    if (!this.live) this.plain(j);
  }

  event(level: 'info' | 'warn' | 'error', message: string): void {
    if (this.quiet || level === 'error') return; // failures are shown with their stderr by unit()
    this.line(`${level === 'warn' ? '! ' : ''}${message}`);
  }

  transfer(key: string, bytes: number, total?: number): void {
    const mb = (n: number) => (n / 2 ** 20).toFixed(1);
    this.progress.set(key, total ? `${mb(bytes)}/${mb(total)} MiB` : `${mb(bytes)} MiB`);
  }

  private failure(u: UnitSnapshot): void {
    const what = u.kind === 'job' ? `${this.services.has(u.job) ? 'service' : 'job'} ${u.job}${u.task === null ? '' : ` task ${u.task}`}` : u.kind === 'ingress' ? `ingress of volume ${u.job}` : 'egress';
    const why = u.reason === 'exit' ? `exit code ${u.exitCode}` : u.reason === 'oom' ? 'out of memory' : u.reason === 'not-ready' ? 'never ready' : u.reason ?? 'failed';
    const lines = [`✗ ${what} failed (${why}, attempt ${u.attempt})${u.message ? `: ${u.message}` : ''}`];
    if (u.kind === 'job' && !this.runDir) lines.push(`    (its log: \`warren logs ${this.id} ${u.task === null ? u.job : `${u.job}:${u.task}`} --err\`)`);
    else if (u.kind === 'job') {
      const logs = logPaths(this.runDir, u.job, u.task);
      const tail = tailLines(logs.err, 5);
      if (tail.length) lines.push(...tail.map((l) => `    | ${l}`), `    (full log: ${logs.err})`);
    }
    for (const l of lines) this.line(l);
  }

  private stateOf(j: JobLine): string {
    const c = j.counts;
    if (c.succeeded + c.failed + c.canceled + c.skipped === j.total) {
      if (c.failed) return 'failed';
      if (c.canceled) return 'canceled';
      if (c.skipped === j.total) return 'skipped';
      return 'succeeded';
    }
    if (c.running || c.starting) return 'running';
    if (c.ready) return 'ready';
    return j.attempt > 0 ? 'retrying' : 'pending';
  }

  private plain(j: JobLine): void {
    const s = this.stateOf(j);
    if (s === j.printedState || s === 'ready' || s === 'pending' || s === 'retrying') return;
    j.printedState = s;
    if (s === 'running') {
      this.line(`→ ${j.name} started${j.total > 1 ? ` (${j.total} tasks)` : ''}`);
    } else {
      const took = j.startedAt !== null && j.endedAt !== null ? ` in ${formatDuration((j.endedAt - j.startedAt) / 1000)}` : '';
      const extra = j.total > 1 ? ` (${j.counts.succeeded}/${j.total} tasks succeeded)` : '';
      this.line(`${s === 'succeeded' ? '✓' : s === 'skipped' ? '-' : '✗'} ${j.name} ${s}${took}${extra}`);
    }
  }

  private line(s: string): void {
    if (this.live) this.messages.push(s);
    else this.out.write(s + '\n');
  }

  private render(): string[] {
    const now = Date.now();
    const rows: string[] = [];
    const icon: Record<string, string> = { succeeded: '✓', failed: '✗', canceled: '⊘', skipped: '-', running: '▶', ready: '…', pending: '·', retrying: '↻' };
    for (const j of this.jobs.values()) {
      const s = this.stateOf(j);
      const end = s === 'running' || s === 'ready' || s === 'pending' || s === 'retrying' ? now : j.endedAt ?? now;
      const el = j.startedAt !== null ? formatDuration((end - j.startedAt) / 1000) : '';
      let detail = '';
      if (j.total > 1) {
        const done = j.counts.succeeded + j.counts.failed + j.counts.canceled + j.counts.skipped;
        const w = 20;
        const filled = Math.round((done / j.total) * w);
        detail = `[${'#'.repeat(filled)}${' '.repeat(w - filled)}] ${done}/${j.total}` + (j.counts.running ? ` ${j.counts.running} running` : '') + (j.counts.failed ? ` ${j.counts.failed} failed` : '');
      } else if (j.attempt > 1) detail = `attempt ${j.attempt}`;
      const prog = j.kind !== 'job' ? this.progress.get(j.kind === 'egress' ? '@egress' : `@ingress/${j.name.slice(8)}`) : undefined;
      rows.push(`${icon[s]} ${j.name.padEnd(24)} ${s.padEnd(9)} ${el.padStart(7)}  ${detail}${prog ? ` ${prog}` : ''}`);
    }
    const total = formatDuration((now - this.t0) / 1000);
    rows.push(`  elapsed ${total}`);
    return rows;
  }

  private draw(): void {
    const cols = this.out.columns || 100;
    let s = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A\x1b[J` : '';
    for (const m of this.messages.splice(0)) s += m + '\n';
    const rows = this.render().map((r) => (r.length > cols - 1 ? r.slice(0, cols - 1) : r));
    s += rows.join('\n') + '\n';
    this.drawnLines = rows.length;
    this.out.write(s);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.live && !this.quiet) this.draw();
  }
}
