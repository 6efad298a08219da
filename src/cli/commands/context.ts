// `warren context add|use|list|remove`: the Warren servers this CLI talks to (../contexts.ts).
// Tokens are written to the contexts file (0600) and never printed.

import type { Command } from 'commander';
import { addContext, contextsPath, listContexts, removeContext, useContext } from '../contexts.js';
import { commandGroup } from '../util.js';

export function register(program: Command): void {
  const group = commandGroup(program, 'context', 'the Warren servers this CLI talks to (contexts): add, use, list, remove');

  group
    .command('add <name>')
    .description('add a server (or replace the context of that name); the CA file is read now')
    .requiredOption('--server <url>', 'the server, https://HOST[:PORT]')
    .requiredOption('--token <token>', 'your API token on that server (from its admin: `warren user add`)')
    .option('--ca <file>', "the CA certificate (PEM) that issued the server's certificate, when it is not a public CA")
    .action((name: string, o: { server: string; token: string; ca?: string }) => {
      const { replaced, context } = addContext(name, { server: o.server, token: o.token, ...(o.ca !== undefined ? { ca: o.ca } : {}) });
      process.stdout.write(`context "${name}" ${replaced ? 'replaced' : 'added'}: ${context.server}${context.ca ? ` (CA ${context.ca})` : ''}\n`);
      process.stdout.write(`  use it: warren context use ${name}   (or --context ${name} on one command)\n`);
    });

  group
    .command('use <name>')
    .description('make a context the current one: commands go to its server unless --local or --context says otherwise')
    .action((name: string) => {
      const c = useContext(name);
      process.stdout.write(`current context: ${name} (${c.server})\n`);
      if (process.env.WARREN_CONTEXT && process.env.WARREN_CONTEXT !== name) {
        process.stdout.write(`  note: WARREN_CONTEXT=${process.env.WARREN_CONTEXT} is set in this shell and wins over it\n`);
      }
    });

  group
    .command('list')
    .description('list the contexts; * marks the current one (tokens are never shown)')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const all = listContexts();
      if (o.json) {
        process.stdout.write(JSON.stringify(all, null, 2) + '\n');
        return;
      }
      if (all.length === 0) {
        process.stdout.write(`no contexts (${contextsPath()}): commands use this machine\n  add one: warren context add NAME --server URL --token TOKEN [--ca FILE]\n`);
        return;
      }
      const rows = all.map((c) => [c.current ? '*' : ' ', c.name, c.server, c.ca ?? '-']);
      const head = [' ', 'NAME', 'SERVER', 'CA'];
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ') + '\n';
      process.stdout.write(line(head) + rows.map(line).join(''));
      if (!all.some((c) => c.current)) process.stdout.write('no current context: commands use this machine unless --context or WARREN_CONTEXT says otherwise\n');
      if (process.env.WARREN_CONTEXT) process.stdout.write(`WARREN_CONTEXT=${process.env.WARREN_CONTEXT} is set: it wins over the current context\n`);
    });

  group
    .command('remove <name>')
    .description('remove a context (and its token) from this machine')
    .action((name: string) => {
      const { wasCurrent } = removeContext(name);
      process.stdout.write(`context "${name}" removed${wasCurrent ? '; no context is current now: commands use this machine' : ''}\n`);
    });
}
