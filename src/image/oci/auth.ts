// Registry credentials: WWW-Authenticate parsing and the per-user credential store
// `$WARREN_HOME/registries.json` (mode 0600), written by `warren registry login`.
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { WarrenError, warrenHome } from '../../common/index.js';

/** Credentials for one registry: user name and password (or an access token as password), or a bearer token. */
export type RegistryAuth = { username: string; password: string } | { token: string };

export interface AuthChallenge {
  scheme: string; // lower case: 'bearer' | 'basic' | ...
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate header value into challenges (RFC 7235):
 * `Bearer realm="https://auth.example/token",service="registry",scope="repository:x:pull"`.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  while (i < s.length) {
    skipWs();
    while (i < s.length && s[i] === ',') {
      i++;
      skipWs();
    }
    const m = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(s.slice(i));
    if (!m) break;
    const scheme = m[0].toLowerCase();
    i += m[0].length;
    const params: Record<string, string> = {};
    // auth-params: name=value or name="quoted", separated by commas, until the next scheme token
    for (;;) {
      skipWs();
      const save = i;
      const pm = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*/.exec(s.slice(i));
      if (!pm) {
        i = save;
        break;
      }
      i += pm[0].length;
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++; // closing quote
      } else {
        const vm = /^[^,\s]*/.exec(s.slice(i))!;
        value = vm[0];
        i += vm[0].length;
      }
      params[pm[1]!.toLowerCase()] = value;
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      break;
    }
    out.push({ scheme, params });
  }
  return out;
}

/** `$WARREN_HOME/registries.json`. */
export function credentialsFile(home: string = warrenHome()): string {
  return join(home, 'registries.json');
}

interface CredentialsDoc {
  registries: Record<string, { username?: string; password?: string; token?: string }>;
}

function readDoc(file: string): CredentialsDoc {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { registries: {} };
    throw e;
  }
  try {
    const doc = JSON.parse(text) as CredentialsDoc;
    if (!doc || typeof doc !== 'object' || typeof doc.registries !== 'object' || doc.registries === null) throw new Error('no "registries" object');
    return doc;
  } catch (e) {
    throw new WarrenError('IMAGE_CREDENTIALS_INVALID', `registry credentials file ${file} is not valid: ${(e as Error).message}`, {
      hint: `fix or delete ${file}, then run \`warren registry login REGISTRY -u USER\` again`,
    });
  }
}

/** Stored credentials for `registry` (host[:port]), if any. */
export function loadCredentials(registry: string, file: string = credentialsFile()): RegistryAuth | undefined {
  const e = readDoc(file).registries[registry];
  if (!e) return undefined;
  if (typeof e.token === 'string') return { token: e.token };
  if (typeof e.username === 'string' && typeof e.password === 'string') return { username: e.username, password: e.password };
  return undefined;
}

/** Store credentials for `registry`; the file is replaced atomically and kept at mode 0600. */
export function saveCredentials(registry: string, auth: RegistryAuth, file: string = credentialsFile()): void {
  const doc = readDoc(file);
  doc.registries[registry] = 'token' in auth ? { token: auth.token } : { username: auth.username, password: auth.password };
  writeDoc(file, doc);
}

/** Forget the credentials for `registry`; returns whether there were any. */
export function removeCredentials(registry: string, file: string = credentialsFile()): boolean {
  const doc = readDoc(file);
  if (!doc.registries[registry]) return false;
  delete doc.registries[registry];
  writeDoc(file, doc);
  return true;
}

function writeDoc(file: string, doc: CredentialsDoc): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
