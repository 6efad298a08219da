// Which Warren the workflow verbs talk to: the embedded default on this machine, or a
// server through a context (`warren context add|use`, `--context`, WARREN_CONTEXT; `--local`
// forces the embedded default).

import type { Command } from 'commander';
import { WarrenError } from '../common/index.js';
import { EmbeddedClient, type AdminClient, type WarrenClient } from '../api/index.js';
import { nodePolicy } from './policy.js';

export interface TargetOpts {
  context?: string;
  local?: boolean;
  store?: string;
}

export function addTargetOptions(c: Command): Command {
  return c.option('--context <name>', 'the server context to use (see `warren context list`)').option('--local', 'run on this machine (the embedded default), whatever the current context');
}

export async function openClient(o: TargetOpts, extra: { cores?: number } = {}): Promise<{ client: WarrenClient; embedded: boolean }> {
  const client = await EmbeddedClient.open({ ...(o.store !== undefined ? { store: o.store } : {}), ...(extra.cores !== undefined ? { cores: extra.cores } : {}), nodePolicy });
  return { client, embedded: true };
}

/** An admin client for the server of the context (admin verbs have no embedded form). */
export async function openAdmin(o: TargetOpts): Promise<{ admin: AdminClient; close: () => Promise<void> }> {
  throw new WarrenError('CLI_NEEDS_SERVER', 'this command administers a Warren server, and no server context is set', {
    hint: 'add one: `warren context add NAME --server https://HOST:PORT --token ADMIN_TOKEN --ca ca.pem` (the token is in DIR/admin.token of `warren server --data DIR`)',
  });
}
