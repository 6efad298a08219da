// The node's policy file, $WARREN_HOME/policy.json, written by the node's admin:
//   {"require-signed": bool, "trusted-keys": ["FINGERPRINT", ...], "allow-setuid": bool}
// Loaded by `warren run` and `warren image pull`; small on purpose (no heavy imports).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WarrenError } from '../common/index.js';

export interface NodePolicy {
  requireSigned: boolean;
  trustedKeys: string[];
  /**
   * Keep setuid/setgid bits when unpacking images and let containers honor them (root
   * mounted without nosuid, no_new_privs off). Default false. See docs/security.md.
   */
  allowSetuid: boolean;
}

const EXAMPLE = 'write it as {"require-signed": true, "trusted-keys": ["FINGERPRINT"], "allow-setuid": false}';

/** The node's policy, `$WARREN_HOME/policy.json` (all defaults when the file does not exist). */
export function nodePolicy(home: string): NodePolicy {
  const file = join(home, 'policy.json');
  if (!existsSync(file)) return { requireSigned: false, trustedKeys: [], allowSetuid: false };
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new WarrenError('CLI_BAD_POLICY', `the node policy ${file} is not valid JSON: ${(e as Error).message}`, { hint: EXAMPLE });
  }
  const keys = v['trusted-keys'];
  const bool = (k: string) => v[k] === undefined || typeof v[k] === 'boolean';
  if (!bool('require-signed') || !bool('allow-setuid') || (keys !== undefined && !(Array.isArray(keys) && keys.every((k) => typeof k === 'string')))) {
    throw new WarrenError(
      'CLI_BAD_POLICY',
      `the node policy ${file} has a wrong type: "require-signed" and "allow-setuid" must be true or false, "trusted-keys" a list of strings`,
      { hint: EXAMPLE },
    );
  }
  return { requireSigned: v['require-signed'] === true, trustedKeys: (keys as string[] | undefined) ?? [], allowSetuid: v['allow-setuid'] === true };
}
