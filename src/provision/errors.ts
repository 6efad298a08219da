// The inventory's refusals, one builder each, shared by the stores (src/store/inventory.ts) and
// the verbs (manage.ts): what is wrong, naming the nodes and values, and what to do next.
import { WarrenError } from '../common/index.js';

const shown = (names: string[]): string => (names.length > 10 ? `${names.slice(0, 10).join(', ')} and ${names.length - 10} more` : names.join(', '));

const what = (k: 'mac' | 'ip'): string => (k === 'mac' ? 'MAC' : 'IP');

export function duplicateError(kind: 'mac' | 'ip' | 'name', value: string, a: string, b: string): WarrenError {
  if (kind === 'name') {
    return new WarrenError('PROVISION_DUPLICATE', `node ${value} is given twice in one write`, { hint: 'name each node once', details: { kind, value } });
  }
  const msg = a === b ? `node ${a} has ${what(kind)} ${value} on two interfaces` : `nodes ${b} and ${a} would both have ${what(kind)} ${value}`;
  return new WarrenError('PROVISION_DUPLICATE', msg, {
    hint: a === b ? 'give each interface its own address' : `give ${a} another ${what(kind)}, or change or delete ${b} first (\`warren node list --show ${b}\`)`,
    details: { kind, value, nodes: [b, a] },
  });
}

export function existsError(kind: 'node' | 'profile', names: string[]): WarrenError {
  return new WarrenError('PROVISION_EXISTS', `${kind === 'node' ? (names.length > 1 ? 'nodes' : 'node') : 'profile'} ${shown(names)} ${names.length > 1 ? 'are' : 'is'} already in the inventory; nothing was added`, {
    hint: kind === 'node' ? 'pick names that are not in `warren node list`, or change them with `warren node set`' : 'pick another name, or change it with `warren profile set`',
    details: { names },
  });
}

export function notFoundError(kind: 'node' | 'profile', names: string[]): WarrenError {
  return new WarrenError('PROVISION_NOT_FOUND', `no ${kind} ${shown(names)} in the inventory`, {
    hint: kind === 'node' ? 'see `warren node list`; `warren node add` adds one' : 'see `warren profile list`; `warren profile add` adds one',
    details: { names },
  });
}

export function profileUnknownError(node: string, profile: string): WarrenError {
  return new WarrenError('PROVISION_PROFILE_UNKNOWN', `node ${node} uses profile ${profile}, which does not exist`, {
    hint: `add it first (\`warren profile add ${profile}\`), or leave it out of --profile`,
    details: { node, profile },
  });
}

export function profileInUseError(profile: string, nodes: string[]): WarrenError {
  return new WarrenError('PROVISION_PROFILE_IN_USE', `profile ${profile} is used by ${nodes.length === 1 ? 'node' : 'nodes'} ${shown(nodes)}; it was not deleted`, {
    hint: `take it off ${nodes.length === 1 ? 'that node' : 'them'} (\`warren node set NODES --profile ...\`) or delete ${nodes.length === 1 ? 'it' : 'them'} first`,
    details: { profile, nodes },
  });
}

