// Volumes: references (`volume://SCOPE/CLASS[/NAME]`), v4's `use`/`name`/`size`, storage
// classes, and data in and out (ingress, egress). Pure.
import { resolve as resolvePath } from 'node:path';
import { suggestion } from './diagnostics.js';
import { NAME_RULE, badName, badPath } from './limits.js';
import { Reader, isObj, readSecret, readStepPolicy, short, type Obj, type Seg } from './reader.js';
import { BUILTIN_STORAGE_CLASSES, STORAGE_CLASSES_FILE, type StorageClass } from './storage.js';
import type { TransferSpec, VolumeScope, VolumeSpec } from './types.js';
import { JOB_NAME_RE } from './wfformat.js';

const VOLUME_KEYS_V1 = ['name', 'reference', 'type', 'path', 'ingress', 'egress'];
const VOLUME_KEYS_V4 = ['name', 'reference', 'use', 'size', 'annotations', 'ingress', 'egress'];
const TRANSFER_KEYS = ['source', 'destination', 'sha256', 'size', 'policy'];
const ENDPOINT_KEYS = ['uri', 'secret'];
const TRANSFER_SCHEMES = ['file://', 'http://', 'https://', 's3://'];
const REFERENCE_HINT = 'use volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME';
const NAME_PART = '[A-Za-z0-9][A-Za-z0-9_.-]*';
const REFERENCE_RE = new RegExp(`^volume://([A-Za-z]+)/(${NAME_PART})(?:/(${NAME_PART}))?$`);
const V4_ONLY_HINTS = Object.fromEntries(['use', 'size', 'annotations'].map((k) => [k, `a volume's "${k}" needs "version: v4" (in v1, write reference: volume://user/CLASS[/NAME])`]));
const V1_ONLY_HINTS = Object.fromEntries(['type', 'path'].map((k) => [k, `"${k}" is Fuzzball's deprecated v1 volume form: write use: ephemeral, or reference: volume://user/CLASS[/NAME]`]));
const SCOPES: Record<string, VolumeScope> = { user: 'user', account: 'account', group: 'account' };

/** The classes a file may name: the built-in ones and the machine's (`$WARREN_HOME/storage-classes.yaml`). */
export type StorageClasses = Readonly<Record<string, StorageClass>>;

function classList(classes: StorageClasses): string {
  return Object.keys(classes).join(', ');
}

function referenceHint(classes: StorageClasses): string {
  const extra = Object.values(classes).filter((c) => !c.builtin);
  return extra.length === 0 ? REFERENCE_HINT : `${REFERENCE_HINT}; this machine's storage classes: ${extra.map((c) => `volume://user/${c.name}${c.persistent ? '/NAME' : ''}`).join(', ')}`;
}

function readEndpoint(r: Reader, v: unknown, path: Seg[]): { uri: string; secret?: string } | undefined {
  const o = r.obj(v, path, ENDPOINT_KEYS, 'a transfer source or destination');
  if (!o) return undefined;
  if (o.uri === undefined) {
    r.error(path, 'missing required key "uri"', `e.g. {uri: https://example.org/data.tar.gz}`, true);
    return undefined;
  }
  const uri = r.str(o.uri, [...path, 'uri']);
  const secret = o.secret === undefined ? undefined : readSecret(r, o.secret, [...path, 'secret']);
  if (uri === undefined) return undefined;
  if (!TRANSFER_SCHEMES.some((s) => uri.toLowerCase().startsWith(s))) {
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri);
    r.error([...path, 'uri'], m ? `unsupported URI scheme "${m[1]}://" in "${uri}"` : `invalid URI "${uri}"`, `use one of ${TRANSFER_SCHEMES.join(', ')}`);
    return undefined;
  }
  if (uri.length <= uri.indexOf('://') + 3) {
    r.error([...path, 'uri'], `URI "${uri}" has no path`, 'e.g. file://input/data.csv or https://example.org/data.csv');
    return undefined;
  }
  return secret !== undefined ? { uri, secret } : { uri };
}

/** The volume side of a transfer: `file://` and a path inside the volume. */
function volumeSide(r: Reader, ep: { uri: string }, path: Seg[], side: string): boolean {
  if (!ep.uri.toLowerCase().startsWith('file://')) {
    r.error([...path, 'uri'], `${side} must be a file:// path inside the volume, got "${ep.uri}"`, 'e.g. file://input/data.csv (relative to the volume root)');
    return false;
  }
  const rel = ep.uri.slice('file://'.length);
  if (rel.split('/').includes('..')) {
    r.error([...path, 'uri'], `${side} "${ep.uri}" leaves the volume ("..")`, 'paths inside a volume are relative to its root and may not contain ".."');
    return false;
  }
  const bad = badPath(rel);
  if (bad) {
    r.error([...path, 'uri'], `${side} path ${bad}`, 'Linux paths are at most 4095 bytes, each component at most 255');
    return false;
  }
  return true;
}

/** The outside side of a transfer: relative file:// paths are resolved against the workflow file's directory. */
function outsideSide(ep: { uri: string; secret?: string }, baseDir: string): { uri: string; secret?: string } {
  if (!ep.uri.toLowerCase().startsWith('file://')) return ep;
  const p = ep.uri.slice('file://'.length);
  if (p.startsWith('/')) return ep;
  // Literal path, no percent-encoding: `file://` URIs are paths (as src/data reads them).
  return { ...ep, uri: `file://${resolvePath(baseDir, p)}` };
}

function readTransfers(r: Reader, v: unknown, path: Seg[], dir: 'ingress' | 'egress', baseDir: string): TransferSpec[] {
  const list = r.list(v, path, 'a list of transfers ({source: {uri}, destination: {uri}})');
  const out: TransferSpec[] = [];
  list?.forEach((item, i) => {
    const p = [...path, i];
    const o = r.obj(item, p, TRANSFER_KEYS, `an ${dir} item`);
    if (!o) return;
    let ok = true;
    for (const k of ['source', 'destination']) {
      if (o[k] === undefined) {
        r.error(p, `missing required key "${k}"`, 'a transfer has a source: {uri} and a destination: {uri}');
        ok = false;
      }
    }
    const source = o.source === undefined ? undefined : readEndpoint(r, o.source, [...p, 'source']);
    const destination = o.destination === undefined ? undefined : readEndpoint(r, o.destination, [...p, 'destination']);
    let sha256: string | undefined;
    if (o.sha256 !== undefined) {
      const s = r.str(o.sha256, [...p, 'sha256']);
      if (s !== undefined && !/^[0-9a-fA-F]{64}$/.test(s)) {
        r.error([...p, 'sha256'], `invalid sha256 "${s.length > 70 ? `${s.slice(0, 67)}...` : s}": expected 64 hexadecimal digits`, 'compute it with `sha256sum FILE`');
        ok = false;
      } else if (s !== undefined) sha256 = s.toLowerCase();
    }
    let sizeBytes: number | undefined;
    if (o.size !== undefined) {
      sizeBytes = r.size(o.size, [...p, 'size']);
      if (sizeBytes === undefined) ok = false;
      else if (!Number.isSafeInteger(sizeBytes)) {
        r.error([...p, 'size'], `size ${JSON.stringify(o.size)} is not a whole number of bytes below 2^53`, 'write the exact size in bytes, e.g. size: 1048576 or size: 1MiB');
        ok = false;
      }
    }
    const errorsBefore = r.issues.length;
    const policy = o.policy === undefined ? undefined : readStepPolicy(r, o.policy, [...p, 'policy'], 'a transfer policy', false);
    if (r.issues.length > errorsBefore) ok = false;
    if (dir === 'ingress' && destination && !volumeSide(r, destination, [...p, 'destination'], 'ingress destination')) ok = false;
    if (dir === 'egress' && source && !volumeSide(r, source, [...p, 'source'], 'egress source')) ok = false;
    if (!ok || !source || !destination) return;
    const extra = {
      ...(sha256 ? { sha256 } : {}),
      ...(sizeBytes !== undefined ? { sizeBytes } : {}),
      ...(policy && Object.keys(policy).length > 0 ? { policy } : {}),
    };
    if (dir === 'ingress') {
      // `file://NAME` naming a top-level `files:` entry: that content (Fuzzball's inline files).
      const inline = source.uri.startsWith('file://') ? source.uri.slice('file://'.length) : undefined;
      if (inline !== undefined && Object.hasOwn(r.files, inline)) {
        out.push({ source, destination, ...extra, inlineFile: { name: inline, content: r.files[inline]! } });
      } else out.push({ source: outsideSide(source, baseDir), destination, ...extra });
    } else out.push({ source, destination: outsideSide(destination, baseDir), ...extra });
  });
  return out;
}

interface Resolved {
  reference: string;
  kind: VolumeSpec['kind'];
  scope: VolumeScope;
  persistentName?: string;
  storageClass?: string;
}

/** `volume://SCOPE/CLASS[/NAME]`. */
function readReference(r: Reader, v: unknown, path: Seg[], classes: StorageClasses): Resolved | undefined {
  const ref = r.str(v, path);
  if (ref === undefined) return undefined;
  const m = REFERENCE_RE.exec(ref);
  const scope = m ? SCOPES[m[1]!] : undefined;
  const cls = m && Object.hasOwn(classes, m[2]!) ? classes[m[2]!] : undefined;
  if (!m || !scope || !cls) {
    r.error(path, `invalid volume reference "${short(ref)}"`, referenceHint(classes));
    return undefined;
  }
  const name = m[3];
  const bad = name !== undefined ? badName(name, JOB_NAME_RE) : undefined;
  if (bad) {
    r.error(path, `invalid ${cls.persistent ? 'persistent ' : ''}volume name "${short(name!)}": it ${bad}`, NAME_RULE);
    return undefined;
  }
  // An ephemeral class makes a new volume for each run: a NAME is accepted and ignored (as Fuzzball does).
  return {
    reference: ref,
    kind: cls.persistent ? 'persistent' : 'ephemeral',
    scope,
    ...(cls.persistent ? { persistentName: name ?? 'default' } : {}),
    ...(cls.builtin ? {} : { storageClass: cls.name }),
  };
}

/** v4 without `reference`: `use: CLASS`, `name: NAME` (an existing persistent volume), `size`, `annotations`. */
function readUse(r: Reader, o: Obj, p: Seg[], classes: StorageClasses): Resolved | undefined {
  let cls: StorageClass | undefined;
  let ok = true;
  if (o.use !== undefined) {
    const u = r.str(o.use, [...p, 'use']);
    if (u === undefined) return undefined;
    cls = Object.hasOwn(classes, u) ? classes[u] : undefined;
    if (!cls) {
      r.error([...p, 'use'], `unknown storage class "${short(u)}"${suggestion(u, Object.keys(classes))}`, `storage classes known here: ${classList(classes)} (a machine adds its own in $WARREN_HOME/${STORAGE_CLASSES_FILE})`);
      ok = false;
    }
  }
  let name: string | undefined;
  if (o.name !== undefined) {
    name = r.str(o.name, [...p, 'name']);
    const bad = name !== undefined ? badName(name, JOB_NAME_RE) : undefined;
    if (bad) {
      r.error([...p, 'name'], `invalid volume name "${short(name!)}": it ${bad}`, NAME_RULE);
      ok = false;
    }
    if (name === undefined) ok = false;
  }
  if (!ok) return undefined;
  if (cls?.name === 'ephemeral' && name !== undefined) {
    r.error([...p, 'name'], `an ephemeral volume has no name (got "${short(name)}")`, 'remove "name" for scratch space of this run, or write use: persistent to mount the existing volume of that name', true);
    return undefined;
  }
  if (cls?.name === 'persistent' && name === undefined) {
    r.error([...p, 'use'], 'a persistent volume needs a "name"', 'add name: NAME (the volume is kept between runs under that name)', true);
    return undefined;
  }
  // With a name: the persistent volume of that name (of the class, when one is given);
  // without: a new ephemeral volume (of the class, when one is given).
  const builtin = cls === undefined || cls.builtin;
  const clsName = builtin ? (name !== undefined ? 'persistent' : 'ephemeral') : cls!.name;
  return {
    reference: `volume://user/${clsName}${name !== undefined ? `/${name}` : ''}`,
    kind: name !== undefined ? 'persistent' : 'ephemeral',
    scope: 'user',
    ...(name !== undefined ? { persistentName: name } : {}),
    ...(builtin ? {} : { storageClass: cls!.name }),
  };
}

export function readVolumes(r: Reader, v: unknown, baseDir: string, classes: StorageClasses = BUILTIN_STORAGE_CLASSES): Record<string, VolumeSpec> {
  const volumes: Record<string, VolumeSpec> = {};
  if (v === null) return volumes;
  if (!isObj(v)) {
    r.typeError(['volumes'], 'a mapping of volume name to {reference: ...}', v);
    return volumes;
  }
  const v4 = r.dialect === 'v4';
  for (const [name, spec] of Object.entries(v)) {
    const p: Seg[] = ['volumes', name];
    const badVol = badName(name, JOB_NAME_RE);
    if (badVol) r.error(p, `invalid volume name "${short(name)}": it ${badVol}`, NAME_RULE, true);
    const o = r.obj(spec, p, v4 ? VOLUME_KEYS_V4 : VOLUME_KEYS_V1, 'a volume', v4 ? V1_ONLY_HINTS : V4_ONLY_HINTS);
    if (!o) continue;
    let res: Resolved | undefined;
    if (o.reference !== undefined) {
      if (v4 && o.use !== undefined) {
        r.error([...p, 'use'], 'set either "reference" or "use", not both', 'reference: volume://user/CLASS[/NAME] names the class itself; use: CLASS (with name: NAME for a persistent volume) is the other way to write it', true);
        continue;
      }
      res = readReference(r, o.reference, [...p, 'reference'], classes);
      // Next to a reference, `name` is the volume's key repeated (Fuzzball's API keeps it there).
      if (o.name !== undefined) {
        const n = r.str(o.name, [...p, 'name']);
        if (n !== undefined && n !== name) r.warn([...p, 'name'], `"name" is ignored: this volume is "${name}" (its key), and the reference says which volume it is`, `remove name: ${short(n)}`);
      }
    } else if (v4 && (o.use !== undefined || o.name !== undefined || o.size !== undefined || o.annotations !== undefined)) {
      res = readUse(r, o, p, classes);
    } else if (!v4 && o.type !== undefined) {
      // Fuzzball's deprecated `type: EPHEMERAL` (before references).
      const t = r.str(o.type, [...p, 'type']);
      if (t !== undefined && t.toUpperCase() === 'EPHEMERAL') res = { reference: 'volume://user/ephemeral', kind: 'ephemeral', scope: 'user' };
      else if (t !== undefined) r.error([...p, 'type'], t.toUpperCase() === 'HOST' ? 'host volumes (type: HOST) are not supported by Warren' : `unknown volume type "${short(t)}"`, `${REFERENCE_HINT} instead (Fuzzball deprecated "type" for "reference")`);
    } else {
      r.error(
        p,
        v4 ? 'missing "use", "name" or "reference"' : 'missing required key "reference"',
        v4 ? 'write use: ephemeral (scratch space for this run), name: NAME (a persistent volume kept between runs), or reference: volume://user/CLASS[/NAME]' : 'use reference: volume://user/ephemeral (scratch space for this run) or volume://user/persistent/NAME',
        true,
      );
      continue;
    }
    if (!v4 && o.path !== undefined) r.error([...p, 'path'], 'host volumes ("path") are not supported by Warren', `${REFERENCE_HINT} instead (Fuzzball deprecated host volumes)`, true);
    let sizeBytes: number | undefined;
    if (o.size !== undefined) {
      sizeBytes = r.size(o.size, [...p, 'size']);
      if (sizeBytes !== undefined && !Number.isSafeInteger(Math.ceil(sizeBytes))) {
        r.error([...p, 'size'], `size ${JSON.stringify(o.size)} is too large`, 'sizes are at most 2^53 bytes (8 PiB)');
        sizeBytes = undefined;
      }
    }
    const annotations = o.annotations === undefined ? undefined : r.strMap(o.annotations, [...p, 'annotations'], 'annotation name to value');
    const ingress = o.ingress === undefined ? [] : readTransfers(r, o.ingress, [...p, 'ingress'], 'ingress', baseDir);
    const egress = o.egress === undefined ? [] : readTransfers(r, o.egress, [...p, 'egress'], 'egress', baseDir);
    if (res) {
      volumes[name] = {
        name,
        reference: res.reference,
        kind: res.kind,
        ...(res.scope !== 'user' ? { scope: res.scope } : {}),
        ...(res.persistentName !== undefined ? { persistentName: res.persistentName } : {}),
        ...(res.storageClass !== undefined ? { storageClass: res.storageClass } : {}),
        ...(sizeBytes !== undefined ? { sizeBytes: Math.ceil(sizeBytes) } : {}),
        ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
        ingress,
        egress,
      };
    }
  }
  return volumes;
}
