// The Unix account a task runs as, looked up by name on the node (as Slurm does: uid, gid
// and supplementary groups from the node's own passwd/group databases, NSS included).

import { execFileSync } from 'node:child_process';
import { userInfo } from 'node:os';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
  home: string;
}

const cache = new Map<string, { at: number; account: Account | null }>();
const TTL_MS = 60_000;

/** The account named `name` on this node, or null when it has none. */
export function lookupAccount(name: string, now = Date.now()): Account | null {
  const hit = cache.get(name);
  if (hit && now - hit.at < TTL_MS) return hit.account;
  let account: Account | null = null;
  if (/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(name) && name.length <= 64) {
    try {
      const line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n')[0] ?? '';
      const f = line.split(':');
      if (f.length >= 7 && f[0] === name) {
        const groups = execFileSync('id', ['-G', name], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
          .trim()
          .split(/\s+/)
          .map(Number)
          .filter((g) => Number.isInteger(g) && g >= 0);
        account = { name, uid: Number(f[2]), gid: Number(f[3]), groups, home: f[5] ?? '/' };
      }
    } catch {
      account = null;
    }
  }
  cache.set(name, { at: now, account });
  return account;
}

let own: string | null = null;

/** The agent's own account name (looked up once). */
export function ownAccount(): string {
  if (own !== null) return own;
  try {
    own = userInfo().username;
  } catch {
    own = String(process.getuid?.() ?? '');
  }
  return own;
}
