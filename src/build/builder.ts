// `warren image build OUT.sif RECIPE.def`: build an image from an Apptainer definition file.
//
// Per stage, in Apptainer's order: bootstrap into a fresh tree under $WARREN_HOME/build/<id>,
// %setup on the host ($APPTAINER_ROOTFS = the tree), %files (from the host or an earlier
// stage), %appfiles, %post INSIDE the tree (runc: root inside; rootless for a non-root caller),
// %appinstall per app, then the metadata (/.singularity.d, SCIF). After the last stage: %test
// (unless notest), then mksquashfs into a SIF with Apptainer's Def.FILE, inspect-metadata.json
// and oci-config.json objects, or the tree itself as a sandbox directory. OUT appears only
// complete (written beside it, then renamed); on any failure the build directory and any
// partial output are removed.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, posix, resolve } from 'node:path';
import { WarrenError, removeTreeSync, warrenHome } from '../common/index.js';
import { buildSif, DataType, type ImageConfig } from '../image/index.js';
import { runBuildStep, lastLines, lexists, type BuildStepResult } from '../runtime/index.js';
import { defaultToolPath, findExecutable } from '../runtime/container/index.js';
import { parseBuildArgFile, parseDefinition, type App, type FileCopy, type Position, type Recipe, type ScriptSection } from './deffile.js';
import { runBootstrap, runHost } from './bootstrap.js';
import { copyIntoTree, isDirInTree, mkdirInTree, resolveInRoot } from './copy.js';

export { resolveInRoot };
import { ensureSystemTree, inspectMetadata, makeAppDirs, ociConfigDocument, writeAppMeta, writeStageMeta } from './layout.js';

export interface DefinitionBuildOptions {
  /** The definition file. */
  recipe: string;
  /** Output: a .sif file, or a directory with `sandbox`. */
  out: string;
  sandbox?: boolean;
  /** Skip %test. */
  notest?: boolean;
  /** --build-arg values (win over --build-arg-file values, which win over %arguments defaults). */
  buildArgs?: Record<string, string>;
  /** --build-arg-file paths. */
  buildArgFiles?: string[];
  /** Byte-identical output for the same recipe and base (zero UUID and times, fixed squashfs times). */
  deterministic?: boolean;
  /** Replace an existing OUT. */
  force?: boolean;
  /** Working directory: %files and localimage paths are relative to it (default process.cwd()). */
  cwd?: string;
  /** $WARREN_HOME (default from the environment): build trees go to <home>/build/<id>. */
  home?: string;
  /** Image cache for docker/oras bases (default $WARREN_HOME/cache/images). */
  cacheDir?: string;
  /** Progress lines (`stage 1/2: bootstrap docker ...`). */
  onLog?: (line: string) => void;
  /** Output of %setup, %post, %test, debootstrap, as it comes. */
  onOutput?: (chunk: Buffer) => void;
  /** Lines of output kept in an error message (default 20). */
  errorLines?: number;
  /**
   * On SIGINT/SIGTERM: stop the running step, remove the build directory and any partial
   * output, then exit (130/143). For the CLI; a library caller handles its own signals.
   */
  cleanupOnSignal?: boolean;
}

export interface DefinitionBuildResult {
  out: string;
  kind: 'sif' | 'sandbox';
  /** Bytes of the SIF (sif only). */
  size?: number;
  stages: number;
  warnings: string[];
  /** How %post ran: plain runc as root, or rootless (fakeroot). */
  mode: 'root' | 'rootless';
}

/** Definition files (and build argument files) larger than this are refused. */
const MAX_RECIPE_BYTES = 4 << 20;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SCRIPT_TARGET = '/.warren-build-script';

function at(p: Position): string {
  return `${p.file}:${p.line}:${p.col}`;
}

function arch(): string {
  return ({ x64: 'amd64', ia32: '386', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
}

function globRe(pat: string): RegExp {
  let re = '';
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const j = pat.indexOf(']', i + 1);
      if (j < 0) re += '\\[';
      else {
        re += '[' + pat.slice(i + 1, j).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
        i = j;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Shell-style glob of a path (`*`, `?`, `[...]`); no match: []. A path without wildcards is itself when it exists. */
export function expandGlob(pattern: string, base: string): string[] {
  const abs = isAbsolute(pattern) ? pattern : join(base, pattern);
  if (!/[*?[]/.test(pattern)) return lexists(abs) ? [abs] : [];
  const parts = abs.split('/').filter(Boolean);
  let cur = ['/'];
  for (const part of parts) {
    const next: string[] = [];
    if (!/[*?[]/.test(part)) {
      for (const d of cur) if (lexists(join(d, part))) next.push(join(d, part));
    } else {
      const re = globRe(part);
      for (const d of cur) {
        let names: string[];
        try {
          names = readdirSync(d);
        } catch {
          continue;
        }
        for (const n of names.sort()) if ((part.startsWith('.') || !n.startsWith('.')) && re.test(n)) next.push(join(d, n));
      }
    }
    cur = next;
  }
  return cur;
}

function quoteArgs(a: string[]): string {
  return a.map((x) => (/^[\w@%+=:,./-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`)).join(' ');
}

interface Ctx {
  opts: DefinitionBuildOptions;
  home: string;
  recipe: Recipe;
  cwd: string;
  buildDir: string;
  log: (l: string) => void;
  errorLines: number;
  mode: 'root' | 'rootless';
  trees: string[];
}

function mergeEnv(...lists: string[][]): string[] {
  const m = new Map<string, string>();
  for (const l of lists) for (const kv of l) {
    const i = kv.indexOf('=');
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return [...m].map(([k, v]) => `${k}=${v}`);
}

function stepFailed(code: 'BUILD_POST_FAILED' | 'BUILD_TEST_FAILED', what: string, s: ScriptSection, r: BuildStepResult, ctx: Ctx): WarrenError {
  const why = r.runcError ? `runc could not start it: ${r.runcError}` : r.timedOut ? 'it timed out' : `it exited with status ${r.exitCode}`;
  const tail = lastLines(r.tail, ctx.errorLines);
  return new WarrenError(code, `${at(s.pos)}: ${what} failed: ${why}${tail ? `; its last output lines:\n${tail}` : ''}`, {
    hint:
      code === 'BUILD_TEST_FAILED'
        ? 'fix the %test section (or the image it tests), or build with --notest to skip it'
        : `fix ${what}: its commands run with "sh -e -x" (the first failing command stops it; the trace above shows which)${ctx.mode === 'rootless' ? '; as a non-root user only your own uid is mapped (root inside): tools that switch to other users (apt\'s _apt sandbox) need e.g. "apt-get -o APT::Sandbox::User=root", or build as root' : ''}`,
    details: { ...s.pos, exitCode: r.exitCode },
  });
}

/** Run a script section inside the tree. */
async function runInside(ctx: Ctx, tree: string, s: ScriptSection, what: string, env: string[], cwd = '/'): Promise<void> {
  const shell = s.shell ?? '/bin/sh';
  if (!lexists(resolveInRoot(tree, shell))) {
    throw new WarrenError('BUILD_NO_SHELL', `${at(s.pos)}: ${what} cannot run: the image has no ${shell}`, {
      hint: s.shell ? `install ${shell} earlier (e.g. in the base image), or use another shell with "-c"` : 'start from a base with a shell (e.g. Bootstrap: busybox or docker), or copy one in with %files; with Bootstrap: scratch, %setup can install one',
      details: { ...s.pos },
    });
  }
  const script = join(ctx.buildDir, `script-${randomBytes(4).toString('hex')}.sh`);
  writeFileSync(script, s.body, { mode: 0o644 });
  const argv = s.shell ? [shell, SCRIPT_TARGET] : [shell, '-e', '-x', SCRIPT_TARGET];
  ctx.log(`running ${what} (${quoteArgs(argv)})`);
  try {
    const r = await runBuildStep({
      rootfs: tree,
      argv,
      env,
      cwd,
      binds: [{ host: script, target: SCRIPT_TARGET, readOnly: true }],
      stateDir: join(ctx.buildDir, 'state'),
      network: 'host',
      ...(ctx.opts.onOutput ? { onOutput: ctx.opts.onOutput } : {}),
    });
    ctx.mode = r.mode;
    if (r.exitCode !== 0) throw stepFailed('BUILD_POST_FAILED', what, s, r, ctx);
  } finally {
    rmSync(script, { force: true });
  }
}

async function runSetup(ctx: Ctx, tree: string, s: ScriptSection): Promise<void> {
  const script = join(ctx.buildDir, `setup-${randomBytes(4).toString('hex')}.sh`);
  writeFileSync(script, s.body, { mode: 0o644 });
  const argv = s.shell ? [s.shell, script] : ['/bin/sh', '-e', '-x', script];
  ctx.log(`running %setup on this machine (${quoteArgs(argv.slice(0, -1))})`);
  try {
    const r = await runHost(argv[0]!, argv.slice(1), {
      cwd: ctx.cwd,
      env: { ...process.env, APPTAINER_ROOTFS: tree, SINGULARITY_ROOTFS: tree },
      ...(ctx.opts.onOutput ? { onOutput: ctx.opts.onOutput } : {}),
    });
    if (r.code !== 0) {
      const tail = lastLines(r.tail, ctx.errorLines);
      throw new WarrenError('BUILD_SETUP_FAILED', `${at(s.pos)}: %setup failed: it exited with status ${r.code}${tail ? `; its last output lines:\n${tail}` : ''}`, {
        hint: `fix the %setup section: it runs on this machine as you${ctx.mode === 'rootless' || (process.getuid?.() ?? 0) !== 0 ? ' (not root: mknod, chown to others and writing root-owned paths fail)' : ''}, with $APPTAINER_ROOTFS set to the tree being built`,
        details: { ...s.pos, exitCode: r.code },
      });
    }
  } finally {
    rmSync(script, { force: true });
  }
}

/** Copy %files / %appfiles entries into the tree. `destRoot`: inside-path prefix for relative destinations. */
async function copyFiles(ctx: Ctx, tree: string, entries: FileCopy[], from: { tree: string; name: string } | undefined, destRoot: string): Promise<void> {
  for (const e of entries) {
    // Each source: where it is on this machine, and the name it gets in a destination directory.
    let sources: { path: string; name: string }[];
    if (from) {
      // Inside the stage's tree, with its own links: a wildcard only in the last component,
      // matched in the directory that the rest resolves to inside the tree.
      const dir = posix.dirname(posix.normalize('/' + e.src));
      const last = posix.basename(e.src);
      if (/[*?[]/.test(dir)) {
        throw new WarrenError('BUILD_DEF_SYNTAX', `${at(e.pos)}: "%files from ${from.name}": wildcards are allowed only in the last component of ${e.src}`, { hint: 'name the directories, e.g. /opt/app/lib/*.so', details: { ...e.pos } });
      }
      if (/[*?[]/.test(last)) {
        const host = resolveInRoot(from.tree, dir);
        let names: string[] = [];
        try {
          names = readdirSync(host).sort();
        } catch {
          names = [];
        }
        const re = globRe(last);
        sources = names.filter((n) => (last.startsWith('.') || !n.startsWith('.')) && re.test(n)).map((n) => ({ path: resolveInRoot(from.tree, posix.join(dir, n)), name: n }));
      } else {
        const p = resolveInRoot(from.tree, e.src);
        sources = lexists(p) ? [{ path: p, name: posix.basename(posix.normalize('/' + e.src)) }] : [];
      }
    } else sources = expandGlob(e.src, ctx.cwd).map((p) => ({ path: p, name: basename(p) }));
    if (!sources.length) {
      throw new WarrenError('BUILD_FILES_SOURCE_MISSING', `${at(e.pos)}: %files source ${e.src} does not exist${from ? ` in stage ${from.name}` : ` (looked in ${ctx.cwd})`}`, {
        hint: from ? `check the path in stage "${from.name}" (it must exist there after its %post)` : 'check the path; relative %files sources are relative to the directory the build runs in',
        details: { ...e.pos, source: e.src },
      });
    }
    const destInside = posix.normalize(e.dest.startsWith('/') ? e.dest : posix.join(destRoot, e.dest));
    const intoDir = sources.length > 1 || e.dest.endsWith('/');
    // From the host: as Apptainer's `cp -fLr` (links followed, the copies belong to the builder).
    // From a stage: exact (links kept as links, owners kept).
    for (const src of sources) {
      try {
        mkdirInTree(tree, intoDir ? destInside : posix.dirname(destInside));
        const toDir = intoDir || isDirInTree(tree, destInside);
        copyIntoTree(src.path, tree, toDir ? posix.join(destInside, src.name) : destInside, { follow: !from, preserveOwner: !!from && (process.getuid?.() ?? 0) === 0 });
      } catch (err) {
        throw new WarrenError('BUILD_FILES_SOURCE_MISSING', `${at(e.pos)}: copying ${e.src} to ${e.dest} failed: ${(err as Error).message}`, {
          hint: 'check that the source is readable and the destination is a directory or a new path',
          details: { ...e.pos, source: e.src },
          cause: err,
        });
      }
    }
  }
}


function appEnv(app: App): string[] {
  const root = `/scif/apps/${app.name}`;
  return [
    `SCIF_APPNAME=${app.name}`,
    `SCIF_APPROOT=${root}`,
    `SCIF_APPDATA=/scif/data/${app.name}`,
    `SCIF_APPBIN=${root}/bin`,
    `SCIF_APPLIB=${root}/lib`,
    `SCIF_APPMETA=${root}/scif`,
    `APPTAINER_APPNAME=${app.name}`,
    `APPTAINER_APPROOT=${root}`,
    `SINGULARITY_APPNAME=${app.name}`,
    `SINGULARITY_APPROOT=${root}`,
  ];
}

async function buildStage(ctx: Ctx, index: number, tree: string, final: boolean): Promise<ImageConfig | undefined> {
  const stage = ctx.recipe.stages[index]!;
  const n = ctx.recipe.stages.length;
  const label = `stage ${index + 1}/${n}${stage.name ? ` (${stage.name})` : ''}`;
  ctx.log(`${label}: bootstrap ${stage.bootstrap}${stage.header.from ? ` from ${stage.header.from.value}` : ''}`);
  const boot = await runBootstrap(stage, tree, {
    cwd: ctx.cwd,
    ...(ctx.opts.cacheDir ? { cacheDir: ctx.opts.cacheDir } : {}),
    keyDir: join(ctx.home, 'keys'),
    log: (l) => ctx.log(`${label}: ${l}`),
    ...(ctx.opts.onOutput ? { onOutput: ctx.opts.onOutput } : {}),
  });
  ensureSystemTree(tree);
  if (stage.setup) await runSetup(ctx, tree, stage.setup);
  for (const f of stage.files) {
    const from = f.from !== undefined ? ctx.recipe.stages.findIndex((s) => s.name === f.from) : -1;
    if (f.entries.length) ctx.log(`${label}: %files${f.from ? ` from ${f.from}` : ''} (${f.entries.length} entr${f.entries.length === 1 ? 'y' : 'ies'})`);
    await copyFiles(ctx, tree, f.entries, from >= 0 ? { tree: ctx.trees[from]!, name: f.from! } : undefined, '/');
  }
  for (const app of stage.apps) {
    makeAppDirs(tree, app);
    if (app.files.length) await copyFiles(ctx, tree, app.files, undefined, `/scif/apps/${app.name}`);
  }
  const env = mergeEnv([`PATH=${DEFAULT_PATH}`], boot.config?.env ?? [], [
    'HOME=/root',
    'APPTAINER_ENVIRONMENT=/.singularity.d/env/91-environment.sh',
    'SINGULARITY_ENVIRONMENT=/.singularity.d/env/91-environment.sh',
    `APPTAINER_NAME=${basename(ctx.opts.out)}`,
  ]);
  if (stage.post || stage.apps.some((a) => a.install)) {
    mkdirInTree(tree, '/.singularity.d/env');
  }
  if (stage.post) await runInside(ctx, tree, stage.post, `%post of ${label}`, env);
  for (const app of stage.apps) {
    if (app.install) await runInside(ctx, tree, app.install, `%appinstall ${app.name}`, mergeEnv(env, appEnv(app)), `/scif/apps/${app.name}`);
    writeAppMeta(tree, app);
  }
  const buildLabels: Record<string, string> = {
    'org.label-schema.schema-version': '1.0',
    'org.label-schema.build-arch': arch(),
    'org.label-schema.usage.singularity.deffile.bootstrap': stage.bootstrap,
    ...(boot.from ?? stage.header.from?.value ? { 'org.label-schema.usage.singularity.deffile.from': boot.from ?? stage.header.from!.value } : {}),
    'org.label-schema.usage.warren.builder': 'warren image build',
  };
  if (!ctx.opts.deterministic) buildLabels['org.label-schema.build-date'] = new Date().toISOString();
  writeStageMeta(tree, { stage, deffile: final ? ctx.recipe.text : stage.text, ...(boot.config ? { base: boot.config } : {}), buildLabels });
  return boot.config;
}

function readRecipe(path: string): string {
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTREG' });
    if (st.size > MAX_RECIPE_BYTES) throw Object.assign(new Error('too large'), { code: 'ETOOBIG' });
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WarrenError('BUILD_DEF_NOT_FOUND', `definition file ${path} ${code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : code === 'ENOTREG' ? 'is not a regular file' : code === 'ETOOBIG' ? `is larger than ${MAX_RECIPE_BYTES >> 20} MiB` : `cannot be read (${code ?? (e as Error).message})`}`, {
      hint: 'give the path of an Apptainer definition file: warren image build OUT.sif RECIPE.def',
    });
  }
}

/** Parse the recipe with the build arguments of `opts` (files first, then --build-arg). */
export function loadRecipe(opts: Pick<DefinitionBuildOptions, 'recipe' | 'buildArgs' | 'buildArgFiles'>): Recipe {
  const args: Record<string, string> = {};
  for (const f of opts.buildArgFiles ?? []) {
    let text: string;
    try {
      const st = statSync(f);
      if (!st.isFile() || st.size > MAX_RECIPE_BYTES) throw Object.assign(new Error(st.isFile() ? 'too large' : 'not a regular file'), { code: st.isFile() ? 'ETOOBIG' : 'ENOTREG' });
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw new WarrenError('BUILD_ARG_INVALID', `build argument file ${f} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { hint: 'check the path given with --build-arg-file' });
    }
    Object.assign(args, parseBuildArgFile(text, f));
  }
  Object.assign(args, opts.buildArgs ?? {});
  return parseDefinition(readRecipe(opts.recipe), opts.recipe, { buildArgs: args });
}

/** Build OUT from a definition file (see the header). */
export async function buildFromDefinition(opts: DefinitionBuildOptions): Promise<DefinitionBuildResult> {
  const recipe = loadRecipe(opts);
  const log = opts.onLog ?? (() => {});
  for (const w of recipe.warnings) log(`warning: ${w}`);
  const out = resolve(opts.out);
  if (!existsSync(dirname(out)) || !statSync(dirname(out)).isDirectory()) {
    throw new WarrenError('BUILD_OUTPUT_INVALID', `cannot write ${out}: directory ${dirname(out)} does not exist`, { hint: 'create the directory, or give another output path' });
  }
  try {
    accessSync(dirname(out), constants.W_OK | constants.X_OK);
  } catch {
    throw new WarrenError('BUILD_OUTPUT_INVALID', `cannot write ${out}: directory ${dirname(out)} is not writable by you`, { hint: 'give an output path in a directory you can write' });
  }
  if (out === resolve(opts.recipe)) {
    throw new WarrenError('BUILD_OUTPUT_INVALID', `the output ${out} is the definition file itself`, { hint: 'give the image path first: warren image build OUT.sif RECIPE.def' });
  }
  if (lexists(out)) {
    if (!opts.force) {
      throw new WarrenError('BUILD_OUTPUT_EXISTS', `${out} already exists`, { hint: 'remove it, give another path, or build with --force to replace it' });
    }
    // --force replaces a file, an empty directory or an image sandbox: never any other directory.
    const st = lstatSync(out);
    if (st.isDirectory() && !existsSync(join(out, '.singularity.d')) && readdirSync(out).length) {
      throw new WarrenError('BUILD_OUTPUT_INVALID', `${out} is a directory that is not an image sandbox; --force replaces only files, empty directories and sandboxes`, { hint: 'give another output path, or remove the directory yourself' });
    }
  }
  const home = opts.home ?? warrenHome();
  const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const buildDir = join(home, 'build', id);
  mkdirSync(join(home, 'build'), { recursive: true, mode: 0o700 });
  mkdirSync(buildDir, { mode: 0o700 });
  const ctx: Ctx = { opts, home, recipe, cwd: resolve(opts.cwd ?? process.cwd()), buildDir, log, errorLines: opts.errorLines ?? 20, mode: (process.getuid?.() ?? 0) === 0 ? 'root' : 'rootless', trees: [] };
  const partial = join(dirname(out), `.${basename(out)}.warren-build-${id}`);
  const onSignal = (sig: NodeJS.Signals): void => {
    stopSteps(join(buildDir, 'state'));
    try {
      if (lexists(partial)) removeTreeSync(partial);
      removeTreeSync(buildDir);
    } finally {
      process.stderr.write(`warren build: ${sig}: stopped; removed ${buildDir}\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
  };
  if (opts.cleanupOnSignal) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  try {
    let config: ImageConfig | undefined;
    for (let i = 0; i < recipe.stages.length; i++) {
      const tree = join(buildDir, `stage-${i + 1}`, 'rootfs');
      mkdirSync(tree, { recursive: true, mode: 0o755 });
      chmodSync(tree, 0o755);
      ctx.trees.push(tree);
      config = await buildStage(ctx, i, tree, i === recipe.stages.length - 1);
    }
    const last = recipe.stages[recipe.stages.length - 1]!;
    const tree = ctx.trees[ctx.trees.length - 1]!;
    // Earlier stages are no longer needed: free their space before the squashfs is made.
    for (const t of ctx.trees.slice(0, -1)) removeTreeSync(dirname(t));
    if (last.test && !opts.notest) {
      if (!lexists(resolveInRoot(tree, '/bin/sh'))) {
        throw new WarrenError('BUILD_NO_SHELL', `${at(last.test.pos)}: %test cannot run: the image has no /bin/sh (the test runs through /.singularity.d/actions/test, a sh script)`, {
          hint: 'install a shell in the image, or build with --notest',
          details: { ...last.test.pos },
        });
      }
      ctx.log('running %test');
      const r = await runBuildStep({
        rootfs: tree,
        argv: ['/.singularity.d/actions/test'],
        env: mergeEnv([`PATH=${DEFAULT_PATH}`], config?.env ?? [], ['HOME=/root']),
        stateDir: join(buildDir, 'state'),
        readOnly: true,
        ...(opts.onOutput ? { onOutput: opts.onOutput } : {}),
      });
      if (r.exitCode !== 0) throw stepFailed('BUILD_TEST_FAILED', '%test', last.test, r, ctx);
    }
    let size: number | undefined;
    if (opts.sandbox) {
      ctx.log(`writing sandbox ${out}`);
      try {
        renameSync(tree, partial);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
        mkdirSync(partial);
        const r = await runHost('cp', ['-a', '--', `${tree}/.`, `${partial}/`]);
        if (r.code !== 0) throw new WarrenError('BUILD_OUTPUT_INVALID', `cannot write sandbox ${out}: cp exited with ${r.code}: ${r.tail.trim().split('\n').slice(-2).join(' ')}`, { hint: 'check the space and permissions of the output directory' });
      }
    } else {
      ctx.log(`writing ${out} (mksquashfs${opts.deterministic ? ', deterministic' : ''})`);
      const c: ImageConfig = config ?? { env: [], labels: {} };
      await buildSif({
        rootfs: tree,
        out: partial,
        source: opts.recipe,
        ...(opts.deterministic ? { deterministic: true } : {}),
        configObject: false,
        config: c,
        objects: [
          { dataType: DataType.Deffile, groupId: 1, data: Buffer.from(recipe.text, 'utf8') },
          { dataType: DataType.GenericJSON, groupId: 1, name: 'inspect-metadata.json', data: inspectMetadata(tree, recipe.text.replace(/\n+$/, '')) },
          { dataType: DataType.GenericJSON, groupId: 1, name: 'oci-config.json', data: ociConfigDocument(c) },
        ],
      });
      size = statSync(partial).size;
    }
    if (lexists(out)) removeTreeSync(out);
    renameSync(partial, out);
    ctx.log(`built ${out}`);
    return { out, kind: opts.sandbox ? 'sandbox' : 'sif', ...(size !== undefined ? { size } : {}), stages: recipe.stages.length, warnings: recipe.warnings, mode: ctx.mode };
  } catch (e) {
    if (lexists(partial)) removeTreeSync(partial);
    throw e;
  } finally {
    if (opts.cleanupOnSignal) {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
    removeTreeSync(buildDir);
  }
}

/** Stop the build steps still running (their runc state is under `stateDir/runc`). */
function stopSteps(stateDir: string): void {
  const root = join(stateDir, 'runc');
  let ids: string[] = [];
  try {
    ids = readdirSync(root);
  } catch {
    return;
  }
  const runc = findExecutable('runc', defaultToolPath()) ?? 'runc';
  for (const id of ids) {
    const args = ['--root', root, ...((process.getuid?.() ?? 0) !== 0 ? ['--rootless', 'true'] : []), 'delete', '-f', id];
    spawnSync(runc, args, { stdio: 'ignore', timeout: 20_000 });
  }
}
