// Which Warren the workflow verbs talk to: the embedded default on this machine, or a
// server through a context (`warren context add|use`, `--context`, WARREN_CONTEXT; `--local`
// forces the embedded default). See ./contexts.ts for the precedence.

import { WarrenError } from '../common/index.js';
import { EmbeddedClient, HttpClient, type AdminClient, type WarrenClient } from '../api/index.js';
import { nodePolicy } from './policy.js';
import { resolveTarget } from './contexts.js';

export { addTargetOptions } from './contexts.js';

export interface TargetOpts {
  context?: string;
  local?: boolean;
  store?: string;
}

export async function openClient(o: TargetOpts, extra: { cores?: number } = {}): Promise<{ client: WarrenClient; embedded: boolean }> {
  const t = resolveTarget(o);
  if (t.kind === 'server') {
    if (o.store !== undefined) {
      throw new WarrenError('CLI_BAD_OPTION', `--store is for the embedded default; context ${t.name} talks to the server ${t.url}, which has its own store`, {
        hint: 'drop --store, or add --local to use this machine',
      });
    }
    return { client: new HttpClient({ url: t.url, token: t.token, ...(t.caPem ? { caPem: t.caPem } : {}) }), embedded: false };
  }
  const client = await EmbeddedClient.open({ ...(o.store !== undefined ? { store: o.store } : {}), ...(extra.cores !== undefined ? { cores: extra.cores } : {}), nodePolicy });
  return { client, embedded: true };
}

/** An admin client for the server of the context (admin verbs have no embedded form). */
export async function openAdmin(o: TargetOpts): Promise<{ admin: AdminClient; server: HttpClient; close: () => Promise<void> }> {
  const t = resolveTarget(o);
  if (t.kind !== 'server') {
    throw new WarrenError('CLI_NEEDS_SERVER', `this command administers a Warren server, and ${o.local ? '--local was given' : 'no server context is set'}`, {
      hint: 'add one: `warren context add NAME --server https://HOST:PORT --token ADMIN_TOKEN --ca ca.pem` (the token is in DIR/admin.token of `warren server --data DIR`)',
    });
  }
  const c = new HttpClient({ url: t.url, token: t.token, ...(t.caPem ? { caPem: t.caPem } : {}) });
  return { admin: c, server: c, close: () => c.close() };
}
