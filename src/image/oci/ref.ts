// Parsing of image references. Pure: no I/O.
//
//   docker://[registry/]name[:tag][@sha256:hex]   an image in an OCI/Docker registry
//   oras://registry/name[:tag][@sha256:hex]        a SIF stored as an OCI artifact
//   file:///abs/path/image.sif                     a local SIF file
//   file:///abs/path/rootfs                        a local root file system directory
//   /abs/path/image.sif  or  /abs/path/rootfs      the same, without the scheme
import { posix } from 'node:path';
import { WarrenError, EXIT } from '../../common/index.js';

export interface RegistryImageRef {
  kind: 'docker' | 'oras';
  /** Canonical form: `docker://registry/repository[:tag][@digest]`. */
  uri: string;
  /** Registry host[:port] as written (`docker.io` for Docker Hub). */
  registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>`. */
  digest?: string;
}

export interface LocalImageRef {
  kind: 'sif' | 'rootfs';
  uri: string;
  /** Absolute path of the .sif file or the rootfs directory. */
  path: string;
}

export type ImageRef = RegistryImageRef | LocalImageRef;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;

function invalid(uri: string, why: string, hint?: string): WarrenError {
  return new WarrenError('IMAGE_REF_INVALID', `invalid image reference '${uri}': ${why}`, {
    hint:
      hint ??
      'write docker://[registry/]name[:tag][@sha256:digest], oras://registry/name[:tag], file:///path/image.sif or an absolute path to a rootfs directory',
  });
}

/** Is `d` a well-formed sha256 digest (`sha256:` + 64 lowercase hex)? */
export function isDigest(d: string): boolean {
  return DIGEST.test(d);
}

/** Parse `[registry/]name[:tag][@digest]` (the part after `docker://` or `oras://`). */
export function parseRegistryRef(kind: 'docker' | 'oras', rest: string, uri: string): RegistryImageRef {
  if (rest === '') throw invalid(uri, 'the image name is empty');
  let remainder = rest;
  let digest: string | undefined;
  const at = remainder.indexOf('@');
  if (at >= 0) {
    digest = remainder.slice(at + 1);
    remainder = remainder.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw invalid(uri, `'${digest}' is not a sha256 digest`, 'a digest is written sha256: followed by 64 lowercase hex digits');
    }
  }
  let tag: string | undefined;
  const lastSlash = remainder.lastIndexOf('/');
  const colon = remainder.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = remainder.slice(colon + 1);
    remainder = remainder.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(uri, `'${tag}' is not a valid tag`, 'a tag is up to 128 letters, digits, _, . and -, not starting with . or -');
  }
  const parts = remainder.split('/');
  let registry = 'docker.io';
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    registry = first;
    parts.shift();
    if (!HOST.test(registry)) throw invalid(uri, `'${registry}' is not a valid registry host`);
  } else if (kind === 'oras' && parts.length <= 1) {
    throw invalid(uri, 'an oras:// reference needs a registry host', 'write oras://registry.example.org/name:tag');
  }
  registry = normalizeRegistryHost(registry);
  if (parts.length === 0 || parts.some((p) => p === '')) throw invalid(uri, 'the repository name is empty');
  for (const p of parts) {
    if (!COMPONENT.test(p)) {
      throw invalid(uri, `'${p}' is not a valid repository name component`, 'repository names are lowercase letters, digits and separators (., _, __, -) between them');
    }
  }
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (!tag && !digest) tag = 'latest';
  const canonical = `${kind}://${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { kind, uri: canonical, registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** Parse an image URI as written in a workflow (`image.uri`) or on the command line. */
export function parseImageRef(uri: string): ImageRef {
  if (typeof uri !== 'string' || uri.trim() === '') throw invalid(String(uri), 'the reference is empty');
  const s = uri.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s);
  if (scheme) {
    const name = scheme[1]!.toLowerCase();
    const rest = s.slice(scheme[0].length);
    if (name === 'docker') return parseRegistryRef('docker', rest, s);
    if (name === 'oras') return parseRegistryRef('oras', rest, s);
    if (name === 'file') {
      let path: string;
      try {
        path = decodeURIComponent(rest);
      } catch {
        throw invalid(s, 'the path is not valid percent-encoding');
      }
      if (path.startsWith('localhost/')) path = path.slice('localhost'.length);
      if (!path.startsWith('/')) throw invalid(s, 'a file:// URI needs an absolute path', 'write file:///absolute/path/image.sif (three slashes)');
      return localRef(posix.normalize(path));
    }
    throw invalid(s, `unsupported scheme '${name}://'`);
  }
  if (s.startsWith('/')) return localRef(posix.normalize(s));
  throw invalid(s, 'no scheme', 'write docker://' + s + ' for a registry image, or an absolute path for a local image');
}

function localRef(path: string): LocalImageRef {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  const kind = /\.sif$/i.test(p) ? 'sif' : 'rootfs';
  return { kind, uri: `file://${p}`, path: p };
}

/** `host[:port]` normalised as image references are: Docker Hub's other names are `docker.io`. */
export function normalizeRegistryHost(host: string): string {
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

/** A registry location `host[:port][/path]`, as a registry mirror or a mirror rule's prefix is written. */
export interface RegistryLocation {
  /** host[:port] (Docker Hub's other names normalised to `docker.io`). */
  registry: string;
  /** Repository path prefix inside the registry ('' for none), e.g. `dockerhub`. */
  path: string;
}

/**
 * Parse `host[:port][/path]` (no scheme, tag or digest). Pure; returns a reason instead of
 * throwing, so callers can name the file or variable the text came from.
 */
export function parseRegistryLocation(text: string): RegistryLocation | { error: string } {
  const s = text.trim().replace(/\/+$/, '');
  if (s === '') return { error: 'it is empty' };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return { error: 'write host[:port][/path] without a scheme (plain HTTP is chosen with "insecure")' };
  if (/[@]/.test(s)) return { error: 'a location has no digest' };
  const parts = s.split('/');
  const host = parts.shift()!;
  if (!HOST.test(host)) return { error: `'${host}' is not a valid registry host[:port]` };
  for (const p of parts) {
    if (p === '') return { error: 'the path has an empty component' };
    if (!COMPONENT.test(p)) return { error: `'${p}' is not a valid repository path component (lowercase letters, digits and ., _, __, - between them)` };
  }
  return { registry: normalizeRegistryHost(host), path: parts.join('/') };
}

/** Is `registry` (host[:port]) to be reached over plain HTTP: loopback, or listed in WARREN_INSECURE_REGISTRIES or `extraInsecure`? */
export function isInsecureRegistry(registry: string, env: NodeJS.ProcessEnv = process.env, extraInsecure: readonly string[] = []): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const insecure = [
    ...(env.WARREN_INSECURE_REGISTRIES ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
    ...extraInsecure,
  ];
  return host === 'localhost' || host === '::1' || /^127\./.test(host) || insecure.includes(registry) || insecure.includes(host);
}

/** Base URL of a registry's API: plain HTTP for loopback hosts and those in WARREN_INSECURE_REGISTRIES (or `extraInsecure`). */
export function registryBaseUrl(registry: string, env: NodeJS.ProcessEnv = process.env, extraInsecure: readonly string[] = []): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  return `${isInsecureRegistry(registry, env, extraInsecure) ? 'http' : 'https'}://${registry}`;
}
