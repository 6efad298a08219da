// What `warren image inspect --deffile --labels --runscript ...` shows: the metadata Apptainer
// keeps with an image, read from where Apptainer keeps it:
//   SIF:     the Def.FILE object (the definition file) and the JSON.Generic object
//            `inspect-metadata.json` ({"data":{"attributes":{labels, deffile, runscript,
//            startscript, environment: {path: text}, test, helpfile}},"type":"container"});
//            Warren's own SIFs have neither: their labels come from `warren-image-config.json`.
//   sandbox: the files under /.singularity.d (Singularity, labels.json, runscript, startscript,
//            env/*.sh, test, runscript.help).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataType, readObject, readSif } from './format.js';
import { readImageConfig } from './build.js';

export const INSPECT_METADATA_NAME = 'inspect-metadata.json';

export interface ImageMetadata {
  deffile?: string;
  labels?: Record<string, string>;
  runscript?: string;
  startscript?: string;
  /** Environment scripts by their path in the image, in the order they are sourced. */
  environment?: Record<string, string>;
  test?: string;
  helpfile?: string;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function strMap(v: unknown): Record<string, string> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = typeof x === 'string' ? x : JSON.stringify(x);
  return out;
}

function sorted(m: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The metadata of a SIF file (see the header). Fields the image does not carry are absent. */
export function readSifMetadata(path: string, image = path): ImageMetadata {
  const img = readSif(path, image);
  const out: ImageMetadata = {};
  const def = img.descriptors.find((d) => d.dataType === DataType.Deffile);
  if (def) out.deffile = readObject(img, def).toString('utf8');
  const meta = img.descriptors.find((d) => d.dataType === DataType.GenericJSON && d.name === INSPECT_METADATA_NAME);
  if (meta) {
    let doc: unknown;
    try {
      doc = JSON.parse(readObject(img, meta).toString('utf8'));
    } catch {
      doc = undefined; // a damaged metadata object: show what the rest of the image has
    }
    const a = ((doc as { data?: { attributes?: unknown } } | undefined)?.data?.attributes ?? {}) as Record<string, unknown>;
    const labels = strMap(a.labels);
    if (labels) out.labels = labels;
    if (out.deffile === undefined && str(a.deffile) !== undefined) out.deffile = str(a.deffile);
    for (const k of ['runscript', 'startscript', 'test', 'helpfile'] as const) {
      const v = str(a[k]);
      if (v !== undefined) out[k] = v;
    }
    const env = strMap(a.environment);
    if (env) out.environment = sorted(env);
  }
  if (!out.labels) {
    const config = readImageConfig(path, image);
    if (config) out.labels = { ...config.labels };
  }
  return out;
}

function readText(file: string): string | undefined {
  try {
    return statSync(file).isFile() ? readFileSync(file, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

/** The metadata of a sandbox (root file system directory) from its /.singularity.d. */
export function readSandboxMetadata(dir: string): ImageMetadata {
  const sd = join(dir, '.singularity.d');
  const out: ImageMetadata = {};
  const def = readText(join(sd, 'Singularity'));
  if (def !== undefined) out.deffile = def;
  const labels = readText(join(sd, 'labels.json'));
  if (labels !== undefined) {
    try {
      const m = strMap(JSON.parse(labels));
      if (m) out.labels = m;
    } catch {
      /* not JSON: no labels */
    }
  }
  for (const [k, f] of [['runscript', 'runscript'], ['startscript', 'startscript'], ['test', 'test'], ['helpfile', 'runscript.help']] as const) {
    const v = readText(join(sd, f));
    if (v !== undefined) out[k] = v;
  }
  const envDir = join(sd, 'env');
  if (existsSync(envDir)) {
    const env: Record<string, string> = {};
    for (const f of readdirSync(envDir).filter((n) => n.endsWith('.sh')).sort()) {
      const v = readText(join(envDir, f));
      if (v !== undefined) env[`/.singularity.d/env/${f}`] = v;
    }
    if (Object.keys(env).length) out.environment = env;
  }
  return out;
}
