// The servers an agent talks to (`warren agent --server URL1,URL2`): of two servers on one
// store only the leader takes agents; a follower answers 503 SERVER_NOT_LEADER with the
// leader's URL in details.leader. The agent then goes to that URL (checked like any server:
// the cluster CA and a server SVID of the trust domain, by the same TLS options), or, when
// no leader is named or the request did not get through, to the next URL of its list.
// Self-fencing is unchanged: only an answer of the leader counts as contact.

import { WarrenError } from '../common/index.js';

export type ServerLog = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/** A hinted leader that failed this recently is not followed (the hint may be stale: its lease not yet expired). */
const STALE_HINT_MS = 5000;

export class ServerList {
  private readonly urls: URL[];
  private i = 0;
  private readonly failedAt = new Map<string, number>();
  /** What the last failure did: followed a leader's URL, moved to the next URL, or neither. */
  private last: 'leader' | 'next' | 'same' | 'not-leader' = 'same';

  constructor(
    spec: string | string[],
    private readonly log: ServerLog = () => {},
  ) {
    const items = (Array.isArray(spec) ? spec : [spec]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new WarrenError('CLI_BAD_OPTION', 'no server address was given', { hint: 'give --server https://HOST:PORT (several: comma separated)' });
    const seen = new Set<string>();
    this.urls = [];
    for (const s of items) {
      const u = parseServerUrl(s);
      if (seen.has(u.origin)) continue;
      seen.add(u.origin);
      this.urls.push(u);
    }
  }

  /** Where requests go now. */
  get current(): URL {
    return this.urls[this.i]!;
  }

  get all(): readonly URL[] {
    return this.urls;
  }

  /** A request to `used` got an answer from the leader. */
  succeeded(used: URL): void {
    this.failedAt.delete(used.origin);
    this.last = 'same';
  }

  /** A request to `used` failed with `e`: follow the named leader, or move to the next URL. */
  failed(used: URL, e: WarrenError): void {
    if (used.origin !== this.current.origin) {
      // Another request moved on already.
      this.last = 'next';
      return;
    }
    if (e.code === 'SERVER_NOT_LEADER') {
      const hint = typeof e.details?.leader === 'string' ? e.details.leader : null;
      let leader: URL | null = null;
      try {
        leader = hint ? parseServerUrl(hint) : null;
      } catch {
        leader = null;
      }
      const stale = leader ? Date.now() - (this.failedAt.get(leader.origin) ?? -Infinity) < STALE_HINT_MS : true;
      if (leader && leader.origin !== used.origin && !stale) {
        let k = this.urls.findIndex((u) => u.origin === leader!.origin);
        if (k < 0) {
          this.urls.push(leader);
          k = this.urls.length - 1;
        }
        this.i = k;
        this.last = 'leader';
        this.log('info', `${used.host} is not the leader: following the leader at ${leader.host}`);
        return;
      }
      this.next(used, 'is not the leader');
      // A server that answers "not the leader" is alive: a leader comes soon; never back off long.
      if (this.last === 'same') this.last = 'not-leader';
      return;
    }
    if (e.code === 'AGENT_SERVER_UNREACHABLE') {
      this.failedAt.set(used.origin, Date.now());
      this.next(used, 'does not answer');
      return;
    }
    this.last = 'same';
  }

  private next(used: URL, why: string): void {
    if (this.urls.length < 2) {
      this.last = 'same';
      return;
    }
    this.i = (this.i + 1) % this.urls.length;
    this.last = 'next';
    this.log('info', `${used.host} ${why}: trying ${this.current.host}`);
  }

  /** How long to wait before the next try after a failure, given the loop's own backoff. */
  retryWait(backoffMs: number): number {
    if (this.last === 'leader') return Math.min(backoffMs, 100);
    if (this.last === 'next' || this.last === 'not-leader') return Math.min(backoffMs, 1000);
    return backoffMs;
  }
}

export function parseServerUrl(s: string): URL {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new WarrenError('CLI_BAD_OPTION', `"${s}" is not a server address`, { hint: 'give https://HOST:PORT' });
  }
  if (u.protocol !== 'https:') {
    throw new WarrenError('CLI_BAD_OPTION', `the server address ${s} is not https://`, { hint: 'agents talk to the server over mutual TLS only: give https://HOST:PORT' });
  }
  return new URL(u.origin);
}
