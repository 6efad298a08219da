// `warren port-forward ID SERVICE [LOCAL:]PORT`: forward a local port to a port of a running
// service (as `fuzzball workflow port-forward` does), until Ctrl-C or the service stops.
// It parses and renders; the forwarding is the client API's (src/api/forward.ts).

import type { Command } from 'commander';
import { WarrenError } from '../../common/index.js';
import { forwardPort } from '../../api/index.js';
import { openClient, addTargetOptions, type TargetOpts } from '../client.js';

/** `[LOCAL:]PORT` -> the ports (LOCAL defaults to PORT; 0: any free one). */
export function parsePortSpec(spec: string): { local: number; remote: number } {
  const m = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(spec);
  const remote = m ? Number(m[2]) : NaN;
  const local = m ? (m[1] !== undefined ? Number(m[1]) : remote) : NaN;
  if (!m || remote < 1 || remote > 65535 || local > 65535) {
    throw new WarrenError('CLI_BAD_OPTION', `"${spec}" is not [LOCAL:]PORT (ports 1..65535; LOCAL 0 picks a free one)`, {
      hint: 'e.g. `8080` (127.0.0.1:8080 to the service\'s 8080), `9000:8080`, or `0:8080`',
    });
  }
  return { local, remote };
}

export function register(program: Command): void {
  addTargetOptions(
    program
      .command('port-forward')
      .description("forward a local port (127.0.0.1) to a port of a running service of a workflow, until Ctrl-C")
      .argument('<id>', 'workflow id (or a unique prefix)')
      .argument('<service>', 'the service')
      .argument('<ports>', '[LOCAL:]PORT: the service\'s PORT, on 127.0.0.1:LOCAL here (default the same; 0: a free one, printed)')
      .option('--store <url>', 'store URL'),
  ).action(async (id: string, service: string, ports: string, o: TargetOpts) => {
    const { local, remote } = parsePortSpec(ports);
    const { client } = await openClient(o);
    try {
      const f = await forwardPort(client, {
        id,
        service,
        port: remote,
        localPort: local,
        onConnection: (e) => {
          if (e.kind === 'error' && e.error) process.stderr.write(`${e.error.format()}\n`);
        },
      });
      process.stdout.write(`Forwarding from 127.0.0.1:${f.port} -> ${service}:${remote}\n`);
      process.stderr.write(`  (workflow ${id}; Ctrl-C to stop)\n`);
      const stop = (): void => f.close();
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      try {
        const end = await f.done;
        if (end.reason === 'service-ended') process.stderr.write(`port forward ended: ${end.message}\n`);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    } finally {
      await client.close();
    }
  });
}
