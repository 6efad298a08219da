// Credentials for transfers. A transfer names a secret (`secret: secret://user/NAME`, or
// just NAME); the default resolver reads $WARREN_HOME/secrets/NAME.json
//   {"accessKeyId": "...", "secretAccessKey": "...", "token": "...", "username": "...", "password": "..."}
// and lets environment variables WARREN_SECRET_<NAME>_<KEY> override or supply keys
// (NAME upper-cased, non-alphanumerics as `_`; KEY one of ACCESS_KEY_ID, SECRET_ACCESS_KEY,
// TOKEN, USERNAME, PASSWORD, or any key upper-cased).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecretResolver } from './types.js';
import { dataError } from './errors.js';

const ENV_KEYS: Record<string, string> = {
  ACCESS_KEY_ID: 'accessKeyId',
  SECRET_ACCESS_KEY: 'secretAccessKey',
  TOKEN: 'token',
  SESSION_TOKEN: 'token',
  USERNAME: 'username',
  PASSWORD: 'password',
};

/** NAME of `secret://user/NAME`, `secret://account/NAME`, `secret://NAME` or `NAME`. */
export function secretName(ref: string): string {
  let s = ref.trim().replace(/^secret:\/\//, '');
  s = s.replace(/^(user|account)\//, '');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(s)) {
    throw dataError('DATA_SECRET_INVALID', `'${ref}' is not a valid secret reference`,
      'write secret://user/NAME (NAME: letters, digits, `.`, `_`, `-`)', { usage: true });
  }
  return s;
}

export function defaultSecretResolver(warrenHome: string, env: NodeJS.ProcessEnv = process.env): SecretResolver {
  return (ref: string) => {
    const name = secretName(ref);
    const out: Record<string, string> = {};
    let found = false;
    const file = join(warrenHome, 'secrets', `${name}.json`);
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw dataError('DATA_SECRET_INVALID', `cannot read secret file ${file}: ${(e as Error).message}`,
          'check its permissions (it should be readable by you, mode 600)');
      }
    }
    if (text !== undefined) {
      let obj: unknown;
      try {
        obj = JSON.parse(text);
      } catch (e) {
        throw dataError('DATA_SECRET_INVALID', `secret file ${file} is not valid JSON: ${(e as Error).message}`,
          'write a JSON object such as {"accessKeyId": "...", "secretAccessKey": "..."}', { usage: true });
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
        throw dataError('DATA_SECRET_INVALID', `secret file ${file} must hold a JSON object of strings`,
          'write a JSON object such as {"username": "...", "password": "..."}', { usage: true });
      }
      for (const [k, v] of Object.entries(obj)) {
        if (typeof v === 'string') out[k] = v;
      }
      found = true;
    }
    const prefix = `WARREN_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
    for (const [k, v] of Object.entries(env)) {
      if (!k.startsWith(prefix) || v === undefined) continue;
      const key = k.slice(prefix.length);
      out[ENV_KEYS[key] ?? key.toLowerCase()] = v;
      found = true;
    }
    return found ? out : undefined;
  };
}

/** Whether `ref` names a secret defined on this machine (a file or environment variables); a
 *  damaged secret file counts as defined (using it reports what is wrong with it). */
export function secretExists(warrenHome: string, env: NodeJS.ProcessEnv = process.env): (ref: string) => boolean {
  const resolve = defaultSecretResolver(warrenHome, env);
  return (ref: string) => {
    try {
      return resolve(ref) !== undefined;
    } catch {
      return true;
    }
  };
}
