// `warren image build|inspect|sign|verify|encrypt|decrypt` (SIF images) and
// `warren key generate|import|list|trust|untrust` (the node's key store).
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { WarrenError, EXIT, formatBytes } from '../../common/index.js';
import { prepareImage } from '../../image/index.js';
import { KeyStore, resolveKey, type LoadedKey, type PemKey } from '../../image/keys/index.js';
import {
  buildSif,
  buildSifFromOciLayout,
  isOciLayout,
  decryptSif,
  encryptSif,
  inspectSif,
  readSandboxMetadata,
  readSif,
  readSifMetadata,
  type ImageMetadata,
  signSif,
  verifySif,
  type SifDescriptor,
  type VerifyReport,
} from '../../image/sif/index.js';
import { buildFromDefinition, looksLikeDefinition, parseBuildArgs } from '../../build/index.js';
import { commandGroup } from '../util.js';

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function pad(s: string, n: number): string {
  return s.length >= n ? s + ' ' : s + ' '.repeat(n - s.length);
}

function parseKv(list: string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new WarrenError('SIF_USAGE', `${what} "${kv}" is not KEY=VALUE`, { hint: `write ${what} as KEY=VALUE` });
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function passphraseFrom(varName: string | undefined): string | undefined {
  if (varName === undefined) return undefined;
  const v = process.env[varName];
  if (v === undefined || v === '') {
    throw new WarrenError('SIF_PASSPHRASE_MISSING', `environment variable ${varName} (given with --passphrase-env) is not set or empty`, {
      hint: `export ${varName}=... before running the command (the passphrase is read from the environment so it does not show in the process list)`,
    });
  }
  return v;
}

function describe(d: SifDescriptor): string {
  if (d.partition) return `${d.partition.fs} ${d.partition.part} ${d.partition.arch}`;
  if (d.signature) return `${d.signature.hash}${d.signature.fingerprint ? ` signer ${d.signature.fingerprint}` : ''}`;
  if (d.cryptoMessage) return `${d.cryptoMessage.format} ${d.cryptoMessage.message}`;
  if (d.sbom) return d.sbom.format;
  if (d.ociBlob) return d.ociBlob.digest;
  return '';
}

async function keysForVerify(refs: string[] | undefined, store: KeyStore): Promise<LoadedKey[]> {
  if (refs && refs.length) {
    const out: LoadedKey[] = [];
    for (const r of refs) out.push(await resolveKey(r, { store }));
    return out;
  }
  return store.trustedKeys();
}

function printReport(r: VerifyReport, store: KeyStore): void {
  const names = new Map(store.list().map((k) => [k.fingerprint, k.name]));
  for (const s of r.signatures) {
    const who = s.signers.map((f) => (names.get(f) ? `${f} (${names.get(f)})` : f)).join(', ');
    const state = s.ok ? `verified, signed by ${who}` : `NOT verified: ${s.problem ?? 'unknown problem'}${s.unknownSigners.length ? ` (signer ${s.unknownSigners.join(', ')})` : ''}`;
    process.stdout.write(`signature ${s.id} (${s.kind}) over group ${s.groupId}, objects ${s.objects.join(', ') || '-'}: ${state}\n`);
  }
  if (r.legacy) process.stdout.write('warning: legacy signatures only: the SIF header and descriptors are not protected\n');
  if (r.uncoveredObjects.length) process.stdout.write(`${r.legacy ? 'warning' : 'error'}: objects ${r.uncoveredObjects.join(', ')} are not covered by any valid signature${r.legacy ? ' (a trust policy refuses this image)' : ''}\n`);
  if (r.verified) process.stdout.write(`image ${r.image} verified (signers: ${r.signers.join(', ')})\n`);
}

/**
 * Every signature of the image with its signers, checked against all keys of the key store:
 * a signer the store knows is named (and said trusted or not); one it does not know is listed
 * by the fingerprint the signature names (DSSE signatures name none: `unknown`).
 */
async function signatureList(path: string): Promise<Record<string, unknown>[]> {
  const store = new KeyStore();
  const stored = store.list();
  const keys: LoadedKey[] = [];
  for (const k of stored) keys.push(await store.load(k));
  const r = await verifySif(path, keys, { image: path });
  const byFp = new Map(stored.map((k) => [k.fingerprint, k]));
  const who = (fp: string, verified: boolean) => {
    const k = byFp.get(fp);
    return { fingerprint: fp, verified, inStore: k !== undefined, ...(k ? { name: k.name, trusted: k.trusted } : {}) };
  };
  return r.signatures.map((s) => ({
    id: s.id,
    kind: s.kind,
    groupId: s.groupId,
    objects: s.objects,
    verified: s.ok,
    signers: [...s.signers.map((f) => who(f, true)), ...s.unknownSigners.map((f) => who(f, false))],
    ...(s.problem && !s.ok ? { problem: s.problem } : {}),
  }));
}

const METADATA_FIELDS = ['deffile', 'labels', 'runscript', 'startscript', 'environment', 'test', 'helpfile'] as const;
type MetadataField = (typeof METADATA_FIELDS)[number];

/**
 * `warren image inspect --deffile|--labels|...`: as Apptainer's `inspect` prints them; with
 * --json, Apptainer's shape ({"data":{"attributes":{...}},"type":"container"}) with the fields asked for.
 */
function printMetadata(path: string, wanted: readonly MetadataField[], json: boolean): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new WarrenError('SIF_NOT_FOUND', `image ${path} does not exist`, { hint: 'give the path of a SIF file or a sandbox directory' });
  }
  const meta: ImageMetadata = st.isDirectory() ? readSandboxMetadata(path) : readSifMetadata(path);
  if (json) {
    const attributes: Record<string, unknown> = {};
    for (const f of wanted) if (meta[f] !== undefined) attributes[f] = meta[f];
    process.stdout.write(JSON.stringify({ data: { attributes }, type: 'container' }, null, 2) + '\n');
    return;
  }
  const text = (f: MetadataField): string | undefined => {
    if (f === 'labels') return meta.labels && Object.keys(meta.labels).length ? Object.entries(meta.labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}: ${v}\n`).join('') : undefined;
    if (f === 'environment') return meta.environment ? Object.entries(meta.environment).map(([p, t]) => `=== ${p} ===\n${t.endsWith('\n') ? t : t + '\n'}`).join('') : undefined;
    const v = meta[f];
    return v === undefined ? undefined : v.endsWith('\n') || v === '' ? v : v + '\n';
  };
  for (const f of wanted) {
    const t = text(f);
    if (wanted.length > 1) process.stdout.write(`==${f}==\n`);
    if (t === undefined) process.stderr.write(`image ${path} has no ${f === 'helpfile' ? 'help text' : f === 'test' ? '%test script' : f === 'deffile' ? 'definition file' : f}\n`);
    else process.stdout.write(t);
  }
}

interface BuildCliOptions {
  output?: string;
  env?: string[];
  label?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workdir?: string;
  arch?: string;
  deterministic?: boolean;
  compression?: string;
  sandbox?: boolean;
  notest?: boolean;
  buildArg?: string[];
  buildArgFile?: string[];
  force?: boolean;
  fakeroot?: boolean;
}

/** A definition file: `.def`, or a file whose first non-comment line is a `Bootstrap:` header. */
function isDefinitionFile(p: string): boolean {
  if (/\.def$/i.test(p)) return true;
  try {
    if (!statSync(p).isFile()) return false;
    const fd = openSync(p, 'r');
    try {
      const b = Buffer.alloc(4096);
      const n = readSync(fd, b, 0, b.length, 0);
      return looksLikeDefinition(b.subarray(0, n).toString('utf8'));
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** `warren image build OUT RECIPE.def`: progress and the steps' output on stderr, the result on stdout. */
async function buildDefinition(out: string, recipe: string, opts: BuildCliOptions): Promise<void> {
  for (const [flag, v] of [['--env', opts.env], ['--label', opts.label], ['--entrypoint', opts.entrypoint], ['--cmd', opts.cmd], ['--workdir', opts.workdir], ['--arch', opts.arch], ['--compression', opts.compression]] as const) {
    if (v) throw new WarrenError('SIF_USAGE', `${flag} is not used by definition-file builds`, { hint: `leave out ${flag}: put it in the definition file (%environment, %labels, %runscript)` });
  }
  const r = await buildFromDefinition({
    recipe: resolve(recipe),
    out: resolve(out),
    ...(opts.sandbox ? { sandbox: true } : {}),
    ...(opts.notest ? { notest: true } : {}),
    ...(opts.deterministic ? { deterministic: true } : {}),
    ...(opts.force ? { force: true } : {}),
    buildArgs: parseBuildArgs(opts.buildArg ?? []),
    ...(opts.buildArgFile ? { buildArgFiles: opts.buildArgFile.map((f) => resolve(f)) } : {}),
    cleanupOnSignal: true,
    onLog: (l) => process.stderr.write(`warren build: ${l}\n`),
    onOutput: (c) => process.stderr.write(c),
  });
  process.stdout.write(`built ${r.out} (${r.kind === 'sandbox' ? 'sandbox directory' : formatBytes(r.size ?? 0)}, ${r.stages} stage${r.stages === 1 ? '' : 's'}, %post ${r.mode === 'root' ? 'as root' : 'rootless (fakeroot)'})\n`);
}

export function register(program: Command): void {
  const image = commandGroup(program, 'image', 'container images: pull, build, inspect, sign, verify, encrypt');

  image
    .command('build')
    .description('build a SIF image from an Apptainer definition file (OUT.sif RECIPE.def, as `apptainer build`), a root file system directory, an OCI image layout (oci:DIR[:TAG]) or an image reference (docker://NAME:TAG)')
    .argument('<source>', 'with a definition file: the image to write (OUT.sif, or a directory with --sandbox); else the source: root file system directory, oci:DIR[:TAG], or docker://NAME:TAG')
    .argument('[recipe]', 'Apptainer definition file (.def, or a file whose first line is a Bootstrap: header)')
    .option('-o, --output <file>', 'the SIF file to write (SOURCE -o OUT form)')
    .option('--env <KEY=VALUE>', 'environment variable of the image (repeatable)', collect)
    .option('--label <KEY=VALUE>', 'label of the image (repeatable)', collect)
    .option('--entrypoint <arg>', 'entrypoint argument (repeatable)', collect)
    .option('--cmd <arg>', 'default command argument (repeatable)', collect)
    .option('--workdir <dir>', 'working directory')
    .option('--arch <goarch>', 'architecture of the image (default: this machine)')
    .option('--deterministic', 'zero UUID and timestamps (and fixed squashfs times), so the same input gives the same file')
    .option('--compression <alg>', 'squashfs compression: gzip (default), zstd, xz, lz4, lzo')
    .option('--sandbox', 'definition files: write a root file system directory instead of a SIF')
    .option('--notest', 'definition files: do not run %test')
    .option('--build-arg <NAME=VALUE>', 'definition files: value of a {{ NAME }} build argument (repeatable)', collect)
    .option('--build-arg-file <file>', 'definition files: NAME=VALUE lines of build arguments (repeatable)', collect)
    .option('-F, --force', 'definition files: replace OUT if it exists')
    .option('--fakeroot', 'definition files: run %post as root in a user namespace (the default for non-root users)')
    .action(async (source: string, recipe: string | undefined, opts: BuildCliOptions) => {
      const def = recipe !== undefined ? recipe : opts.output && isDefinitionFile(source) ? source : undefined;
      if (recipe !== undefined && !isDefinitionFile(recipe)) {
        throw new WarrenError('SIF_USAGE', `${recipe} is not a definition file (no .def suffix, and its first line is not a "Bootstrap:" header)`, {
          hint: 'build from a definition file with `warren image build OUT.sif RECIPE.def`, or from a directory or image with `warren image build SOURCE -o OUT.sif`',
        });
      }
      if (def !== undefined) {
        await buildDefinition(recipe !== undefined ? source : opts.output!, def, opts);
        return;
      }
      for (const [flag, v] of [['--sandbox', opts.sandbox], ['--notest', opts.notest], ['--build-arg', opts.buildArg], ['--build-arg-file', opts.buildArgFile], ['--force', opts.force]] as const) {
        if (v) throw new WarrenError('SIF_USAGE', `${flag} is for definition-file builds (warren image build OUT.sif RECIPE.def)`, { hint: `leave out ${flag}, or build from a definition file` });
      }
      if (!opts.output) {
        if (isDefinitionFile(source)) {
          throw new WarrenError('SIF_USAGE', `${source} is a definition file: say where the image goes`, { hint: `warren image build OUT.sif ${source}` });
        }
        throw new WarrenError('SIF_USAGE', `no output given for build source ${source}`, { hint: `warren image build ${source} -o OUT.sif (or, from a definition file: warren image build OUT.sif RECIPE.def)` });
      }
      const out = resolve(opts.output);
      let rootfs: string;
      let base: { env: string[]; entrypoint?: string[]; cmd?: string[]; workingDir?: string; user?: string; labels: Record<string, string> } = { env: [], labels: {} };
      const layout = /^oci:(.+?)(?::([\w][\w.\-]*))?$/.exec(source);
      if (layout || isOciLayout(source)) {
        const dir = layout ? layout[1]! : source;
        const r = await buildSifFromOciLayout({
          layout: resolve(dir),
          ...(layout?.[2] ? { ref: layout[2] } : {}),
          out,
          source,
          config: {
            env: Object.entries(parseKv(opts.env, '--env')).map(([k, v]) => `${k}=${v}`),
            labels: parseKv(opts.label, '--label'),
            ...(opts.entrypoint ? { entrypoint: opts.entrypoint } : {}),
            ...(opts.cmd ? { cmd: opts.cmd } : {}),
            ...(opts.workdir ? { workingDir: opts.workdir } : {}),
          },
          ...(opts.arch ? { arch: opts.arch } : {}),
          ...(opts.deterministic ? { deterministic: true } : {}),
          ...(opts.compression ? { compression: opts.compression as 'gzip' } : {}),
        });
        process.stdout.write(`built ${r.out} (${formatBytes(r.size)}, squashfs partition ${formatBytes(r.partitionSize)})\n`);
        return;
      }
      if (existsSync(source) && statSync(source).isDirectory()) {
        rootfs = resolve(source);
      } else if (source.includes('://') || (!existsSync(source) && /^[a-z0-9][\w.\-/]*(:[\w.\-]+)?(@sha256:[0-9a-f]{64})?$/i.test(source) && /[:@]/.test(source))) {
        const uri = source.includes('://') ? source : `docker://${source}`;
        const prepared = await prepareImage(uri);
        if (prepared.kind !== 'rootfs') {
          throw new WarrenError('SIF_SOURCE_INVALID', `build source ${source} is already a SIF (${prepared.path})`, { hint: 'use it directly, or copy it' });
        }
        rootfs = prepared.path;
        base = prepared.config;
      } else {
        throw new WarrenError('SIF_SOURCE_INVALID', `build source ${source} is not a directory or an image reference`, {
          hint: 'give an existing root file system directory, or an image reference: docker://NAME:TAG (or NAME:TAG)',
        });
      }
      const env = [...base.env];
      for (const [k, v] of Object.entries(parseKv(opts.env, '--env'))) {
        const i = env.findIndex((e) => e.startsWith(k + '='));
        if (i >= 0) env[i] = `${k}=${v}`;
        else env.push(`${k}=${v}`);
      }
      const config = {
        ...base,
        env,
        labels: { ...base.labels, ...parseKv(opts.label, '--label') },
        ...(opts.entrypoint ? { entrypoint: opts.entrypoint } : {}),
        ...(opts.cmd ? { cmd: opts.cmd } : {}),
        ...(opts.workdir ? { workingDir: opts.workdir } : {}),
      };
      const r = await buildSif({
        rootfs,
        out,
        config,
        source,
        ...(opts.arch ? { arch: opts.arch } : {}),
        ...(opts.deterministic ? { deterministic: true } : {}),
        ...(opts.compression ? { compression: opts.compression as 'gzip' } : {}),
      });
      process.stdout.write(`built ${r.out} (${formatBytes(r.size)}, squashfs partition ${formatBytes(r.partitionSize)})\n`);
    });

  image
    .command('inspect')
    .description("list the header and every descriptor of a SIF image; or the image's Apptainer metadata (definition file, labels, runscript, ...) of a SIF or sandbox directory")
    .argument('<image>', 'SIF file, or (with a metadata option) a sandbox directory')
    .option('--json', 'print as JSON')
    .option('-d, --deffile', 'the definition file the image was built from')
    .option('-l, --labels', 'the labels')
    .option('-r, --runscript', 'the runscript')
    .option('-s, --startscript', 'the startscript (instances)')
    .option('-e, --environment', 'the environment scripts')
    .option('-t, --test', 'the %test script')
    .option('-H, --helpfile', 'the help text')
    .action(async (path: string, opts: { json?: boolean } & Partial<Record<MetadataField, boolean>>) => {
      const wanted = METADATA_FIELDS.filter((f) => opts[f]);
      if (wanted.length) {
        printMetadata(path, wanted, opts.json === true);
        return;
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify({ ...inspectSif(path), signatures: await signatureList(path) }, null, 2) + '\n');
        return;
      }
      const img = readSif(path);
      const h = img.header;
      process.stdout.write(`image:   ${path} (${img.fileSize} bytes)\n`);
      process.stdout.write(`id:      ${h.id}\narch:    ${h.arch}\nversion: ${h.version}\ncreated: ${new Date(h.createdAt * 1000).toISOString()}\nmodified: ${new Date(h.modifiedAt * 1000).toISOString()}\n`);
      process.stdout.write(`descriptors: ${img.descriptors.length} used of ${h.descriptorsTotal}\n\n`);
      process.stdout.write(pad('ID', 5) + pad('TYPE', 22) + pad('GROUP', 7) + pad('LINK', 10) + pad('OFFSET', 12) + pad('SIZE', 12) + 'DETAILS\n');
      for (const d of img.descriptors) {
        const link = d.link ? (d.linkIsGroup ? `group ${d.link}` : String(d.link)) : '-';
        const details = [describe(d), d.name ? `name ${d.name}` : ''].filter(Boolean).join(', ');
        process.stdout.write(pad(String(d.id), 5) + pad(d.type, 22) + pad(d.groupId ? String(d.groupId) : '-', 7) + pad(link, 10) + pad(String(d.offset), 12) + pad(String(d.size), 12) + details + '\n');
      }
    });

  image
    .command('sign')
    .description('sign every object group of a SIF image (DSSE with PEM keys, OpenPGP clear-sign with PGP keys)')
    .argument('<image>', 'SIF file (changed in place)')
    .requiredOption('-k, --key <file|fingerprint>', 'private key: PEM (Ed25519, ECDSA P-256, RSA) or armored OpenPGP; repeatable', collect)
    .option('--pgp', 'the keys are OpenPGP keys (clear-signed signatures)')
    .option('--time <iso>', 'signature time (default now)')
    .option('--deterministic', 'zero timestamps in the SIF header and the new descriptors')
    .option('--group <n>', 'sign only this object group (repeatable)', collect)
    .action(async (path: string, opts: { key: string[]; pgp?: boolean; time?: string; deterministic?: boolean; group?: string[] }) => {
      const store = new KeyStore();
      const keys: LoadedKey[] = [];
      for (const ref of opts.key) keys.push(await resolveKey(ref, { store, wantPrivate: true }));
      if (opts.pgp) {
        const notPgp = keys.find((k) => k.kind !== 'pgp');
        if (notPgp) throw new WarrenError('KEY_TYPE_UNSUPPORTED', `key ${notPgp.source ?? notPgp.fingerprint} is not an OpenPGP key, but --pgp was given`, { hint: 'give an armored OpenPGP private key, or leave out --pgp for PEM keys' });
      }
      let time: Date | undefined;
      if (opts.time) {
        time = new Date(opts.time);
        if (Number.isNaN(time.getTime())) throw new WarrenError('SIF_USAGE', `--time ${opts.time} is not a date`, { hint: 'give an ISO 8601 time, e.g. 2020-06-30T00:01:56Z' });
      }
      const groups = opts.group?.map((g) => {
        const n = Number(g);
        if (!Number.isInteger(n) || n <= 0) throw new WarrenError('SIF_USAGE', `--group ${g} is not a group number`, { hint: 'see the groups with `warren image inspect IMAGE`' });
        return n;
      });
      const r = await signSif(path, keys, { image: path, ...(time ? { time } : {}), ...(opts.deterministic ? { deterministic: true } : {}), ...(groups ? { groups } : {}) });
      process.stdout.write(`signed ${path}: group(s) ${r.groups.join(', ')}, signature object(s) ${r.signatureIds.join(', ')}, by ${r.signers.join(', ')}\n`);
    });

  image
    .command('verify')
    .description('verify the signatures of a SIF image; exits 0 only when it verifies')
    .argument('<image>', 'SIF file')
    .option('-k, --key <file|fingerprint>', 'public key (PEM or armored OpenPGP) to accept; repeatable (default: the trusted keys of `warren key list`)', collect)
    .option('--json', 'print the report as JSON')
    .action(async (path: string, opts: { key?: string[]; json?: boolean }) => {
      const store = new KeyStore();
      const keys = await keysForVerify(opts.key, store);
      const r = await verifySif(path, keys, { image: path });
      if (opts.json) {
        const { error, ...rest } = r;
        process.stdout.write(JSON.stringify({ ...rest, ...(error ? { error: { code: error.code, message: error.message } } : {}) }, null, 2) + '\n');
      } else printReport(r, store);
      if (!r.verified) throw r.error!;
    });

  image
    .command('encrypt')
    .description('encrypt the system partition of a SIF image (AES-256-GCM; key wrapped to an RSA public key or derived from a passphrase)')
    .argument('<image>', 'SIF file')
    .requiredOption('-o, --output <file>', 'the encrypted SIF to write')
    .option('-k, --key <file|fingerprint>', 'RSA public key (PEM)')
    .option('--passphrase-env <VAR>', 'environment variable holding the passphrase')
    .action(async (path: string, opts: { output: string; key?: string; passphraseEnv?: string }) => {
      if (!!opts.key === !!opts.passphraseEnv) {
        throw new WarrenError('SIF_USAGE', 'give exactly one of --key and --passphrase-env', { hint: 'e.g. `warren image encrypt IMAGE --key rsa-public.pem -o OUT.sif`' });
      }
      const key = opts.key ? await resolveKey(opts.key) : undefined;
      if (key && key.kind !== 'pem') throw new WarrenError('KEY_TYPE_UNSUPPORTED', `key ${opts.key} is an OpenPGP key; encryption needs a PEM RSA key`, { hint: 'give an RSA public key in PEM, or --passphrase-env' });
      const passphrase = passphraseFrom(opts.passphraseEnv);
      const r = await encryptSif(path, resolve(opts.output), { image: path, ...(key ? { key: key as PemKey } : {}), ...(passphrase !== undefined ? { passphrase } : {}) });
      process.stdout.write(`encrypted ${path} -> ${r.out} (partition ${r.partitionId})${r.droppedSignatures ? `; ${r.droppedSignatures} signature(s) dropped: sign the new image again` : ''}\n`);
    });

  image
    .command('decrypt')
    .description('decrypt an encrypted SIF image into a runnable one')
    .argument('<image>', 'encrypted SIF file')
    .requiredOption('-o, --output <file>', 'the decrypted SIF to write')
    .option('-k, --key <file|fingerprint>', 'RSA private key (PEM)')
    .option('--passphrase-env <VAR>', 'environment variable holding the passphrase')
    .action(async (path: string, opts: { output: string; key?: string; passphraseEnv?: string }) => {
      if (!!opts.key === !!opts.passphraseEnv) {
        throw new WarrenError('SIF_USAGE', 'give exactly one of --key and --passphrase-env', { hint: 'e.g. `warren image decrypt IMAGE --key rsa-private.pem -o OUT.sif`' });
      }
      const key = opts.key ? await resolveKey(opts.key, { wantPrivate: true }) : undefined;
      if (key && key.kind !== 'pem') throw new WarrenError('KEY_TYPE_UNSUPPORTED', `key ${opts.key} is an OpenPGP key; decryption needs a PEM RSA private key`, { hint: 'give the RSA private key in PEM, or --passphrase-env' });
      const passphrase = passphraseFrom(opts.passphraseEnv);
      const r = await decryptSif(path, resolve(opts.output), { image: path, ...(key ? { key: key as PemKey } : {}), ...(passphrase !== undefined ? { passphrase } : {}) });
      process.stdout.write(`decrypted ${path} -> ${r.out}\n`);
    });

  const key = commandGroup(program, 'key', 'signing keys: generate, import, list, trust');

  key
    .command('generate')
    .description('generate a key pair in the key store ($WARREN_HOME/keys) and print its fingerprint')
    .option('--type <type>', 'ed25519 (default), ecdsa-p256 or rsa', 'ed25519')
    .option('--name <name>', 'a name for the key')
    .option('--no-trust', 'do not trust the new key for verification')
    .action((opts: { type: string; name?: string; trust: boolean }) => {
      if (!['ed25519', 'ecdsa-p256', 'rsa'].includes(opts.type)) {
        throw new WarrenError('KEY_TYPE_UNSUPPORTED', `key type ${opts.type} is not supported`, { hint: 'use --type ed25519, ecdsa-p256 or rsa' });
      }
      const store = new KeyStore();
      const k = store.generate({ type: opts.type as 'ed25519', ...(opts.name ? { name: opts.name } : {}), trusted: opts.trust });
      process.stdout.write(`${k.fingerprint}\n`);
      process.stderr.write(`generated ${k.type} key ${k.name}${k.trusted ? ' (trusted)' : ''}: private ${store.privatePath(k)}, public ${store.publicPath(k)}\n`);
    });

  key
    .command('import')
    .description('import a public or private key (PEM or armored OpenPGP) into the key store')
    .argument('<file>', 'key file')
    .option('--trust', 'trust the key for verification and the require-signed policy')
    .option('--name <name>', 'a name for the key')
    .action(async (file: string, opts: { trust?: boolean; name?: string }) => {
      const k = await new KeyStore().import(file, { trusted: opts.trust === true, ...(opts.name ? { name: opts.name } : {}) });
      process.stdout.write(`${k.fingerprint}\n`);
      process.stderr.write(`imported ${k.type} key ${k.name}${k.private ? ' (with private key)' : ''}${k.trusted ? ' (trusted)' : ''}\n`);
    });

  key
    .command('list')
    .description('list the keys of the key store')
    .option('--secret', 'only the keys whose private key the store holds')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean; secret?: boolean }) => {
      const keys = new KeyStore().list().filter((k) => !opts.secret || k.private);
      if (opts.json) {
        process.stdout.write(JSON.stringify(keys, null, 2) + '\n');
        return;
      }
      process.stdout.write(pad('FINGERPRINT', 66) + pad('TYPE', 12) + pad('TRUSTED', 9) + pad('PRIVATE', 9) + 'NAME\n');
      for (const k of keys) process.stdout.write(pad(k.fingerprint, 66) + pad(k.type, 12) + pad(k.trusted ? 'yes' : 'no', 9) + pad(k.private ? 'yes' : 'no', 9) + k.name + '\n');
    });

  key
    .command('export')
    .description('write a key of the key store to FILE (or standard output): its public key, or with --secret its private key')
    .argument('<fingerprint>', 'fingerprint, prefix or name')
    .argument('[file]', 'where to write it (default: standard output)')
    .option('--secret', 'export the private key (FILE is written mode 0600)')
    .option('--force', 'replace FILE if it exists')
    .action((ref: string, file: string | undefined, opts: { secret?: boolean; force?: boolean }) => {
      const store = new KeyStore();
      if (file === undefined || file === '-') {
        const { key: k, text } = store.exportText(ref, opts.secret === true);
        if (opts.secret && process.stdout.isTTY) {
          throw new WarrenError('KEY_SECRET_TO_TERMINAL', `refusing to print the private key ${k.fingerprint} (${k.name}) to a terminal`, {
            hint: `give a file: \`warren key export --secret ${k.fingerprint.slice(0, 16)} FILE\` (written mode 0600), or redirect the output`,
          });
        }
        process.stdout.write(text);
        return;
      }
      const out = resolve(file);
      const k = store.exportToFile(ref, out, { ...(opts.secret ? { secret: true } : {}), ...(opts.force ? { force: true } : {}) });
      process.stderr.write(`exported the ${opts.secret ? 'private' : 'public'} key ${k.fingerprint} (${k.name}) to ${out}\n`);
    });

  key
    .command('remove')
    .description('remove a key from the key store (a trusted one only with --force), or with --secret only its private key')
    .argument('<fingerprint>', 'fingerprint, prefix or name')
    .option('--secret', 'remove only the private key; the public key and its trust stay')
    .option('--force', 'remove a trusted key')
    .action((ref: string, opts: { secret?: boolean; force?: boolean }) => {
      const k = new KeyStore().remove(ref, { ...(opts.secret ? { secretOnly: true } : {}), ...(opts.force ? { force: true } : {}) });
      process.stdout.write(`removed ${opts.secret ? 'the private key of ' : ''}${k.fingerprint} (${k.name})\n`);
    });

  key
    .command('trust')
    .description('trust a key of the key store')
    .argument('<fingerprint>', 'fingerprint, prefix or name')
    .action((ref: string) => {
      const k = new KeyStore().setTrusted(ref, true);
      process.stdout.write(`trusted ${k.fingerprint} (${k.name})\n`);
    });

  key
    .command('untrust')
    .description('stop trusting a key of the key store')
    .argument('<fingerprint>', 'fingerprint, prefix or name')
    .action((ref: string) => {
      const k = new KeyStore().setTrusted(ref, false);
      process.stdout.write(`untrusted ${k.fingerprint} (${k.name})\n`);
    });
}
