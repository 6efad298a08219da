// Registry mirrors: the node's admin sends pulls of one registry (or of a part of it) to
// another, e.g. a pull-through cache inside a firewall, as containers-registries.conf's
// `[[registry]] location / mirror` and Docker's registry-mirrors do.
//
//   WARREN_REGISTRY_MIRRORS="quay.io=127.0.0.1:5000,docker.io=mirror.lab:5000/dockerhub"
//   $WARREN_HOME/mirrors.yaml:
//     mirrors:
//       docker.io: mirror.lab:5000/dockerhub          # PREFIX: LOCATION
//       quay.io/jupyter:                              # a part of a registry
//         location: mirror.lab:5000/jupyter
//         insecure: true                              # plain HTTP to this mirror
//     insecure: [registry.lab:5000]                   # hosts reached over plain HTTP
//
// A rule's PREFIX is `host[:port][/path]`; the image's registry and repository are matched
// against it (the longest prefix wins; Docker Hub is `docker.io` and its official images are
// `docker.io/library/NAME`), and the matched prefix is replaced by the LOCATION: with
// `docker.io=m:5000/dockerhub`, docker://alpine (docker.io/library/alpine) is pulled from
// m:5000/dockerhub/library/alpine. An entry of the variable replaces the file's entry for the
// same prefix. Only pulls are mirrored (pushes go where they are addressed); the image keeps
// its own name everywhere else: cache keys, `warren image ls`, trust policy, messages.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Node as YamlNode } from 'yaml';
import { WarrenError, warrenHome } from '../../common/index.js';
import { isInsecureRegistry, normalizeRegistryHost, parseRegistryLocation, registryBaseUrl, type RegistryImageRef } from './ref.js';

export interface MirrorRule {
  /** What it matches: registry host[:port] and a repository path prefix ('' = the whole registry). */
  registry: string;
  path: string;
  /** Where pulls go instead. */
  location: { registry: string; path: string };
  /** Plain HTTP to the mirror (besides loopback and WARREN_INSECURE_REGISTRIES). */
  insecure: boolean;
  /** Where the rule was written: `WARREN_REGISTRY_MIRRORS` or the file's path. */
  origin: string;
}

export interface RegistriesConfig {
  mirrors: MirrorRule[];
  /** Hosts reached over plain HTTP (the file's `insecure:` list). */
  insecure: string[];
}

/** Where a pull of one image goes. */
export interface PullSource {
  /** Registry host[:port] the requests go to (the mirror's, when one applies). */
  registry: string;
  /** Repository inside that registry. */
  repository: string;
  baseUrl: string;
  /** The rule that applied, if any. */
  mirror?: MirrorRule;
}

export const MIRRORS_ENV = 'WARREN_REGISTRY_MIRRORS';

/** `$WARREN_HOME/mirrors.yaml`. */
export function mirrorsFile(home: string = warrenHome()): string {
  return join(home, 'mirrors.yaml');
}

const FILE_EXAMPLE = 'write it as\n  mirrors:\n    docker.io: mirror.example.org:5000/dockerhub\n    quay.io: {location: mirror.example.org:5000, insecure: true}\n  insecure: [registry.lab:5000]\n(see docs/images.md, "Registry mirrors")';

function invalid(where: string, why: string, hint: string): WarrenError {
  return new WarrenError('IMAGE_MIRRORS_INVALID', `${where}: ${why}`, { hint });
}

function rule(prefixText: string, locationText: string, insecure: boolean, origin: string, where: string, hint: string): MirrorRule {
  const prefix = parseRegistryLocation(prefixText);
  if ('error' in prefix) throw invalid(where, `the mirrored registry '${prefixText}' is not valid: ${prefix.error}`, hint);
  const location = parseRegistryLocation(locationText);
  if ('error' in location) throw invalid(where, `the mirror '${locationText}' for ${prefixText} is not valid: ${location.error}`, hint);
  return { registry: prefix.registry, path: prefix.path, location, insecure, origin };
}

/** The rules of `WARREN_REGISTRY_MIRRORS` (`PREFIX=LOCATION,...`). */
export function parseMirrorsEnv(text: string): MirrorRule[] {
  const hint = `write ${MIRRORS_ENV}="REGISTRY[/PATH]=MIRROR_HOST[:PORT][/PATH],..." e.g. "quay.io=127.0.0.1:5000,docker.io=127.0.0.1:5000/dockerhub"`;
  const out: MirrorRule[] = [];
  for (const item of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) throw invalid(MIRRORS_ENV, `'${item}' is not REGISTRY=MIRROR`, hint);
    out.push(rule(item.slice(0, eq), item.slice(eq + 1), false, MIRRORS_ENV, MIRRORS_ENV, hint));
  }
  return out;
}

/** Parse the text of a mirrors.yaml (`file` names it in messages, with line:column). */
export function parseMirrorsFile(text: string, file: string): RegistriesConfig {
  // The YAML parser (~20 ms to load) only when there is a mirrors file to read.
  const { LineCounter, isMap, isScalar, isSeq, parseDocument } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  const at = (n: YamlNode | null | undefined): string => {
    const off = n?.range?.[0];
    if (off === undefined) return file;
    const p = lc.linePos(off);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const p = lc.linePos(e.pos[0]);
    throw invalid(`${file}:${p.line}:${p.col}`, `not valid YAML: ${e.message.split('\n')[0]}`, FILE_EXAMPLE);
  }
  const out: RegistriesConfig = { mirrors: [], insecure: [] };
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) return out;
  if (!isMap(root)) throw invalid(at(root), 'the file must be a map with "mirrors" and "insecure"', FILE_EXAMPLE);
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    const value = pair.value as YamlNode | null;
    if (key === 'mirrors') {
      if (value === null || (isScalar(value) && value.value === null)) continue;
      if (!isMap(value)) throw invalid(at(value), '"mirrors" must be a map of REGISTRY[/PATH]: MIRROR', FILE_EXAMPLE);
      for (const m of value.items) {
        const prefix = isScalar(m.key) ? String(m.key.value) : '';
        const v = m.value as YamlNode | null;
        const where = at(v ?? (m.key as YamlNode));
        if (isScalar(v) && typeof v.value === 'string') {
          out.mirrors.push(rule(prefix, v.value, false, file, where, FILE_EXAMPLE));
        } else if (isMap(v)) {
          let location: string | undefined;
          let insecure = false;
          for (const f of v.items) {
            const fk = isScalar(f.key) ? String(f.key.value) : '';
            const fv = f.value as YamlNode | null;
            if (fk === 'location' && isScalar(fv) && typeof fv.value === 'string') location = fv.value;
            else if (fk === 'insecure' && isScalar(fv) && typeof fv.value === 'boolean') insecure = fv.value;
            else if (fk === 'location' || fk === 'insecure') {
              throw invalid(at(fv ?? (f.key as YamlNode)), `mirrors.${prefix}.${fk} must be ${fk === 'location' ? 'a string host[:port][/path]' : 'true or false'}`, FILE_EXAMPLE);
            } else throw invalid(at(f.key as YamlNode), `mirrors.${prefix}: unknown key "${fk}"`, 'a mirror has "location" and "insecure"');
          }
          if (location === undefined) throw invalid(where, `mirrors.${prefix} has no "location"`, FILE_EXAMPLE);
          out.mirrors.push(rule(prefix, location, insecure, file, where, FILE_EXAMPLE));
        } else {
          throw invalid(where, `mirrors.${prefix} must be a location (host[:port][/path]) or {location, insecure}`, FILE_EXAMPLE);
        }
      }
    } else if (key === 'insecure') {
      if (!isSeq(value) || !value.items.every((x) => isScalar(x) && typeof x.value === 'string')) {
        throw invalid(at(value ?? (pair.key as YamlNode)), '"insecure" must be a list of hosts (host or host:port)', FILE_EXAMPLE);
      }
      out.insecure.push(...value.items.map((x) => normalizeRegistryHost(String((x as { value: string }).value).trim())));
    } else {
      throw invalid(at(pair.key as YamlNode), `unknown key "${key}"`, 'the file has "mirrors" and "insecure"; ' + FILE_EXAMPLE);
    }
  }
  return out;
}

/**
 * The node's registry configuration: `$WARREN_HOME/mirrors.yaml` (when it exists) with the
 * rules of WARREN_REGISTRY_MIRRORS over it (a variable's rule replaces the file's for the same
 * prefix). Read at each pull: it is small, and an admin's edit applies to the next pull.
 */
export function loadRegistriesConfig(env: NodeJS.ProcessEnv = process.env, file: string = mirrorsFile(warrenHome(env))): RegistriesConfig {
  let cfg: RegistriesConfig = { mirrors: [], insecure: [] };
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      throw invalid(file, `cannot read it (${code ?? (e as Error).message})`, 'check the file\'s permissions, or remove it');
    }
  }
  if (text !== undefined) cfg = parseMirrorsFile(text, file);
  const fromEnv = env[MIRRORS_ENV] ? parseMirrorsEnv(env[MIRRORS_ENV]!) : [];
  const key = (r: MirrorRule) => `${r.registry}/${r.path}`;
  const overridden = new Set(fromEnv.map(key));
  return { mirrors: [...fromEnv, ...cfg.mirrors.filter((r) => !overridden.has(key(r)))], insecure: cfg.insecure };
}

/** The rule for `registry`/`repository`: the longest matching prefix (a variable's first at equal length). */
export function findMirror(cfg: RegistriesConfig, registry: string, repository: string): MirrorRule | undefined {
  let best: MirrorRule | undefined;
  for (const r of cfg.mirrors) {
    if (r.registry !== registry) continue;
    if (r.path !== '' && repository !== r.path && !repository.startsWith(r.path + '/')) continue;
    if (!best || r.path.length > best.path.length) best = r;
  }
  return best;
}

/** Where a pull of `ref` goes under `cfg`: its own registry, or the mirror that applies (repository path kept, prefix replaced). */
export function pullSource(ref: Pick<RegistryImageRef, 'registry' | 'repository' | 'uri'>, cfg: RegistriesConfig, env: NodeJS.ProcessEnv = process.env): PullSource {
  const m = findMirror(cfg, ref.registry, ref.repository);
  if (!m) return { registry: ref.registry, repository: ref.repository, baseUrl: registryBaseUrl(ref.registry, env, cfg.insecure) };
  const rest = m.path === '' ? ref.repository : ref.repository.slice(m.path.length).replace(/^\//, '');
  const repository = [m.location.path, rest].filter(Boolean).join('/');
  if (repository === '') {
    throw invalid(m.origin, `the mirror ${m.location.registry} for ${m.registry}/${m.path} leaves no repository name for ${ref.uri}`, 'give the mirror a path (host:port/path) when its prefix names a whole repository');
  }
  const reg = m.location.registry;
  const plain = m.insecure || isInsecureRegistry(reg, env, cfg.insecure);
  const baseUrl = reg === 'docker.io' && !plain ? 'https://registry-1.docker.io' : `${plain ? 'http' : 'https'}://${reg}`;
  return { registry: reg, repository, baseUrl, mirror: m };
}
