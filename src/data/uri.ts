// Parsing of transfer URIs and safe resolution of volume-relative paths.
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep, dirname } from 'node:path';
import { badUri, pathEscape } from './errors.js';

export type Location =
  | { scheme: 'file'; uri: string; path: string; absolute: boolean }
  | { scheme: 'http'; uri: string; url: URL }
  | { scheme: 's3'; uri: string; bucket: string; key: string };

/** Parse a transfer URI. `file://` paths are taken literally (no percent-decoding):
 *  `file://a/b` is the relative path a/b, `file:///a/b` the absolute path /a/b. */
export function parseLocation(uri: string): Location {
  if (typeof uri !== 'string' || uri.trim() === '') throw badUri(String(uri), 'empty');
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/s.exec(uri);
  if (!m) throw badUri(uri, 'missing scheme (file://, http://, https://, s3://)');
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  if (scheme === 'file') {
    if (rest === '') throw badUri(uri, 'empty path');
    if (rest.includes('\0')) throw badUri(uri, 'NUL byte in path');
    return { scheme: 'file', uri, path: rest, absolute: rest.startsWith('/') };
  }
  if (scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw badUri(uri, 'not a valid URL');
    }
    if (!url.hostname) throw badUri(uri, 'no host');
    return { scheme: 'http', uri, url };
  }
  if (scheme === 's3') {
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const key = slash < 0 ? '' : rest.slice(slash + 1);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw badUri(uri, `'${bucket}' is not a valid bucket name`);
    return { scheme: 's3', uri, bucket, key };
  }
  throw badUri(uri, `unsupported scheme '${scheme}'`);
}

/** The last path component of a location (for destinations that name a directory). */
export function baseName(loc: Location): string {
  const p = loc.scheme === 'file' ? loc.path : loc.scheme === 'http' ? decodeURIComponent(loc.url.pathname) : loc.key;
  const b = p.replace(/\/+$/, '').split('/').pop() ?? '';
  return b;
}

/** Resolve `rel` (leading slashes mean the volume root) inside `root`; reject `..` escapes
 *  and symbolic links in existing parent directories that lead outside the root. */
export function resolveInVolume(root: string, rel: string, uri: string): string {
  const absRoot = resolve(root);
  const trimmed = rel.replace(/^\/+/, '');
  const target = resolve(absRoot, trimmed);
  const r = relative(absRoot, target);
  if (r === '' || r.startsWith('..' + sep) || r === '..' || isAbsolute(r)) throw pathEscape(uri, absRoot);
  // Follow symbolic links of the deepest existing ancestor.
  let realRoot: string;
  try {
    realRoot = realpathSync(absRoot);
  } catch {
    return target; // the root does not exist yet: nothing can be a link
  }
  let probe = target;
  for (;;) {
    try {
      const real = realpathSync(probe);
      const rr = relative(realRoot, real);
      if (rr.startsWith('..' + sep) || rr === '..' || isAbsolute(rr)) throw pathEscape(uri, absRoot);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      const up = dirname(probe);
      if (up === probe) break;
      probe = up;
    }
  }
  return target;
}

/** Resolve a destination that names a directory (`.../`) to DIR/<name>. */
export function withName(path: string, name: string): string {
  return path.endsWith('/') ? path + name : path;
}

