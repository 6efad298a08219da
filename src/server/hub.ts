// The live stream of one run: items numbered in order, kept in a bounded ring so a
// subscriber that reconnects (`afterSeq`, SSE Last-Event-ID) gets what it missed, and handed
// to every subscriber as they come. Memory stays bounded for a million-task run.

import type { StreamItem } from '../api/index.js';

type Unnumbered = StreamItem extends infer T ? (T extends StreamItem ? Omit<T, 'seq'> : never) : never;

export class RunHub {
  private seq = 0;
  private readonly ring: StreamItem[] = [];
  private readonly waiters = new Set<() => void>();
  private ended = false;

  constructor(private readonly capacity = 8192) {}

  push(item: Unnumbered): void {
    const it = { ...item, seq: ++this.seq } as StreamItem;
    this.ring.push(it);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  get lastSeq(): number {
    return this.seq;
  }

  private wake(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** Items after `afterSeq` (those still in the ring), then live ones, until the end or abort. */
  async *subscribe(afterSeq = 0, signal?: AbortSignal): AsyncIterable<StreamItem> {
    let next = afterSeq;
    for (;;) {
      const first = this.ring.length ? this.ring[0]!.seq : this.seq + 1;
      let i = Math.max(0, next + 1 - first);
      while (i < this.ring.length) {
        const it = this.ring[i++]!;
        next = it.seq;
        yield it;
        if (it.type === 'done') return;
      }
      if (this.ended || signal?.aborted) return;
      await new Promise<void>((r) => {
        const w = (): void => {
          signal?.removeEventListener('abort', w);
          r();
        };
        this.waiters.add(w);
        signal?.addEventListener('abort', w, { once: true });
      });
    }
  }
}
