// The agent of a cluster node, composed: the process runtime, the container runtime (runc,
// when installed) under the node's trust policy ($DATA/policy.json), and the data mover.
// `warren agent` puts it behind the server–agent protocol.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createProcessRuntime, type Runtime } from '../runtime/index.js';
import type { EgressFn, IngressFn } from '../data/index.js';
import { LocalAgent } from './local.js';
import { nodePolicy } from './policy.js';

export interface NodeAgentOptions {
  name: string;
  home: string;
  cores?: number;
  memoryBytes?: number;
  labels?: Record<string, string>;
}

function hasRunc(): boolean {
  try {
    execFileSync('runc', ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export async function composeNodeAgent(o: NodeAgentOptions): Promise<LocalAgent> {
  const policy = nodePolicy(o.home);
  let container: Runtime | undefined;
  if (hasRunc()) {
    const { defaultContainerRuntime } = await import('../runtime/container/index.js');
    if (policy.requireSigned) {
      const { TrustGate, effectiveTrustPolicy, KeyStore } = await import('../image/index.js');
      const gate = new TrustGate(effectiveTrustPolicy(policy as never, undefined, new KeyStore(join(o.home, 'keys'))), { dir: join(o.home, 'cache', 'trusted-sif') });
      container = defaultContainerRuntime(o.home, { allowSetuid: policy.allowSetuid, trust: (img) => gate.admit(img) });
    } else container = defaultContainerRuntime(o.home, { allowSetuid: policy.allowSetuid });
  }
  const data = await import('../data/index.js');
  const secrets = data.defaultSecretResolver(o.home);
  const transfers: { ingress: IngressFn; egress: EgressFn } = {
    ingress: (t, root, opts) => data.ingress(t, root, { ...opts, secrets: opts.secrets ?? secrets }),
    egress: (t, root, opts) => data.egress(t, root, { ...opts, secrets: opts.secrets ?? secrets }),
  };
  return new LocalAgent({
    name: o.name,
    home: o.home,
    ...(o.cores !== undefined ? { cores: o.cores } : {}),
    ...(o.memoryBytes !== undefined ? { memoryBytes: o.memoryBytes } : {}),
    ...(o.labels ? { labels: o.labels } : {}),
    process: createProcessRuntime(),
    ...(container ? { container } : {}),
    transfers,
    secrets,
    inheritEnv: false,
  });
}
