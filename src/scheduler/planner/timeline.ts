// Capacity over time of one resource (a cluster site or one cloud instance): a step function
// of cores and GPUs in use. Insertion-based: a job may go into any gap that is wide and long
// enough, also before jobs planned earlier (as in HEFT's insertion policy).

export class Timeline {
  /** Segment i (i < len) covers [times[i], times[i+1]) (the last one: to infinity).
   *  Typed arrays grown by doubling, so inserting a breakpoint is a memmove, not an allocation. */
  private times: Float64Array;
  private cores: Float64Array;
  private gpus: Float64Array;
  private len = 1;
  /** End of the last reservation. */
  lastEnd = 0;

  constructor(
    readonly capCores: number,
    readonly capGpus: number,
    /** Nothing can run before this time (a cloud instance booting). */
    readonly availableAt = 0,
  ) {
    this.times = new Float64Array(8);
    this.cores = new Float64Array(8);
    this.gpus = new Float64Array(8);
    if (availableAt > 0) {
      this.len = 2;
      this.times[1] = availableAt;
      this.cores[0] = capCores;
      this.gpus[0] = capGpus;
      this.lastEnd = availableAt;
    }
  }

  /** Index of the segment that contains time t. */
  private seg(t: number): number {
    const times = this.times;
    let lo = 0;
    let hi = this.len - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid]! <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Earliest t >= ready at which `c` cores and `g` GPUs are free for `dur` seconds. */
  earliestStart(ready: number, dur: number, c: number, g: number): number {
    const t0 = Math.max(ready, this.availableAt);
    if (t0 >= this.lastEnd) return t0;
    const n = this.len;
    const times = this.times;
    const cores = this.cores;
    const gpus = this.gpus;
    const maxC = this.capCores - c;
    const maxG = this.capGpus - g;
    let t = t0;
    let k = this.seg(t);
    for (;;) {
      // Does [t, t+dur) fit, starting at segment k?
      let j = k;
      let ok = true;
      while (j < n && (j === k || times[j]! < t + dur)) {
        if (cores[j]! > maxC || gpus[j]! > maxG) {
          ok = false;
          break;
        }
        j++;
      }
      if (ok) return t;
      // Segment j is too full: try again where it ends.
      if (j + 1 >= n) return Math.max(t, this.lastEnd); // cannot happen for fitting jobs: the tail is empty
      k = j + 1;
      t = times[k]!;
    }
  }

  /** Split so that a segment starts exactly at t; returns its index. */
  private split(t: number): number {
    const i = this.seg(t);
    if (this.times[i] === t) return i;
    if (this.len === this.times.length) {
      const grow = (a: Float64Array): Float64Array => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.times = grow(this.times);
      this.cores = grow(this.cores);
      this.gpus = grow(this.gpus);
    }
    const at = i + 1;
    this.times.copyWithin(at + 1, at, this.len);
    this.cores.copyWithin(at + 1, at, this.len);
    this.gpus.copyWithin(at + 1, at, this.len);
    this.times[at] = t;
    this.cores[at] = this.cores[i]!;
    this.gpus[at] = this.gpus[i]!;
    this.len++;
    return at;
  }

  /** Reserve c cores and g GPUs for [start, end). */
  reserve(start: number, end: number, c: number, g: number): void {
    if (end <= start) return;
    const a = this.split(start);
    const b = this.split(end);
    for (let i = a; i < b; i++) {
      this.cores[i]! += c;
      this.gpus[i]! += g;
    }
    if (end > this.lastEnd) this.lastEnd = end;
  }
}
