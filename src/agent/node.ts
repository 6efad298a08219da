// The agent of a cluster node, composed: the process runtime, the container runtime (runc,
// when installed) under the node's trust policy ($DATA/policy.json), and the data mover.
// `warren agent` puts it behind the server–agent protocol.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createProcessRuntime, type Runtime } from '../runtime/index.js';
import type { EgressFn, IngressFn } from '../data/index.js';
import { LocalAgent } from './local.js';
import { nodePolicy } from './policy.js';
import { discoverNodeGpus } from './gpus.js';
import { nodeAddresses } from './mpi.js';
import type { TaskAssignment } from './contract.js';

export interface NodeAgentOptions {
  name: string;
  home: string;
  cores?: number;
  memoryBytes?: number;
  labels?: Record<string, string>;
  /** Where the other nodes reach this one (multinode jobs); default: its addresses. */
  addresses?: string[];
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
  let containerFor: ((trust: TaskAssignment['trust']) => Runtime | undefined) | undefined;
  if (hasRunc()) {
    const { defaultContainerRuntime } = await import('../runtime/container/index.js');
    const { TrustGate, effectiveTrustPolicy, KeyStore } = await import('../image/index.js');
    const keys = new KeyStore(join(o.home, 'keys'));
    // One runtime per trust policy: the node's own, or the node's with a workflow's (the one
    // rule, src/image effectiveTrustPolicy); a workflow's policy can only add to the node's.
    const byPolicy = new Map<string, Runtime>();
    const runtimeFor = (wf: TaskAssignment['trust']): Runtime | undefined => {
      const key = JSON.stringify(wf ?? null);
      const hit = byPolicy.get(key);
      if (hit) return hit;
      const eff = effectiveTrustPolicy(policy as never, wf as never, keys);
      const gate = eff.requireSigned ? new TrustGate(eff, { dir: join(o.home, 'cache', 'trusted-sif') }) : null;
      const rt = gate ? defaultContainerRuntime(o.home, { allowSetuid: policy.allowSetuid, trust: (img) => gate.admit(img) }) : defaultContainerRuntime(o.home, { allowSetuid: policy.allowSetuid });
      if (rt) byPolicy.set(key, rt);
      return rt;
    };
    container = runtimeFor(undefined);
    containerFor = runtimeFor;
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
    ...(o.addresses ? { addresses: o.addresses } : {}),
    // Services' ports are on the node's network: other nodes reach them at its address.
    serviceHost: o.addresses?.[0] ?? nodeAddresses()[0] ?? '127.0.0.1',
    gpus: discoverNodeGpus(),
    process: createProcessRuntime(),
    ...(container ? { container } : {}),
    ...(containerFor ? { containerFor } : {}),
    transfers,
    secrets,
    inheritEnv: false,
  });
}
