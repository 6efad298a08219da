// Apptainer definition files: parse, substitute `{{ NAME }}` build arguments, validate.
// Pure: text in, a Recipe (or a WarrenError naming file:line:col with a hint) out.
//
// A definition file is one or more stages. Each stage starts with a header (`Key: value`
// lines, the first being `Bootstrap:`), followed by sections (`%name [args]` at the start of a
// line) whose bodies run until the next section or the next stage's `Bootstrap:` line.
// `#` lines in a header are comments; in a section body they belong to the script.
import { WarrenError, didYouMean } from '../common/index.js';

/** Bootstraps Warren builds from. */
export const SUPPORTED_BOOTSTRAPS = ['docker', 'oras', 'localimage', 'scratch', 'busybox', 'debootstrap'] as const;
export type Bootstrap = (typeof SUPPORTED_BOOTSTRAPS)[number];

/** Bootstraps Apptainer knows that Warren refuses, with what to use instead. */
export const REFUSED_BOOTSTRAPS: Record<string, string> = {
  library: 'the Sylabs/Apptainer library service is not supported: pull the image elsewhere and use `Bootstrap: localimage` with `From: IMAGE.sif`, or `Bootstrap: oras`/`docker` from an OCI registry',
  shub: 'Singularity Hub is retired: use `Bootstrap: docker` or `oras` from an OCI registry, or `localimage`',
  yum: 'RPM bootstraps (yum/dnf) are not supported: start from a registry image (`Bootstrap: docker`, `From: rockylinux:9`) and install packages in %post',
  dnf: 'RPM bootstraps (yum/dnf) are not supported: start from a registry image (`Bootstrap: docker`, `From: rockylinux:9`) and install packages in %post',
  zypper: 'zypper bootstraps are not supported: start from a registry image (`Bootstrap: docker`, `From: opensuse/leap`) and install packages in %post',
  arch: 'pacstrap (Arch Linux) bootstraps are not supported: start from a registry image (`Bootstrap: docker`, `From: archlinux`)',
  self: 'copying the host (`Bootstrap: self`) is not supported: use `Bootstrap: localimage` with a root file system directory',
  'docker-daemon': 'Warren does not talk to a Docker daemon: push the image to a registry (`Bootstrap: docker`) or export it (`docker save`, then `warren image build oci:DIR -o BASE.sif` and `Bootstrap: localimage`)',
  'docker-archive': 'docker-archive bases are not supported: load it into a registry and use `Bootstrap: docker`, or unpack it and use `Bootstrap: localimage`',
  oci: 'OCI layout bases are not supported in definition files: `warren image build oci:DIR -o BASE.sif`, then `Bootstrap: localimage` with `From: BASE.sif`',
  'oci-archive': 'OCI archives are not supported: extract it, `warren image build oci:DIR -o BASE.sif`, then `Bootstrap: localimage`',
  buildkit: 'Dockerfile builds (buildkit) are not supported: build the image with a Docker/BuildKit toolchain, push it to a registry and start from it with `Bootstrap: docker`',
  ipfs: 'IPFS bases are not supported: use `Bootstrap: docker` or `oras` from an OCI registry',
};

/** Sections of a stage (not per app). */
export const STAGE_SECTIONS = ['setup', 'files', 'post', 'environment', 'runscript', 'startscript', 'labels', 'help', 'test', 'arguments'] as const;
/** SCIF app sections: `%appX NAME`. */
export const APP_SECTIONS = ['appinstall', 'apprun', 'appenv', 'applabels', 'apphelp', 'appfiles', 'apptest', 'appstart'] as const;
type StageSection = (typeof STAGE_SECTIONS)[number];
type AppSection = (typeof APP_SECTIONS)[number];

/** Header keys Apptainer's bootstraps read (others are accepted with a warning). */
export const KNOWN_HEADER_KEYS = [
  'bootstrap', 'from', 'stage', 'fingerprints', 'registry', 'namespace', 'mirrorurl', 'osversion', 'include', 'exclude',
  'library', 'updateurl', 'confirm', 'setopt', 'includecmd', 'product', 'user', 'regcode', 'productpgp', 'registerurl', 'modules', 'otherurl0',
];

export interface Position {
  file: string;
  line: number;
  col: number;
}

export interface HeaderValue {
  value: string;
  pos: Position;
}

/** A script section (%setup, %post, %test, %runscript, %startscript, %appinstall, ...). */
export interface ScriptSection {
  body: string;
  /** Interpreter from `%post -c /bin/bash` (default: /bin/sh). */
  shell?: string;
  pos: Position;
}

export interface FileCopy {
  src: string;
  /** Destination inside the image (absolute), or for %appfiles relative to the app's root. */
  dest: string;
  pos: Position;
}

export interface FilesSection {
  /** `%files from STAGE`: copy out of that stage's tree. */
  from?: string;
  entries: FileCopy[];
  pos: Position;
}

export interface App {
  name: string;
  install?: ScriptSection;
  run?: ScriptSection;
  env?: ScriptSection;
  labels: Record<string, string>;
  help?: ScriptSection;
  test?: ScriptSection;
  start?: ScriptSection;
  files: FileCopy[];
  pos: Position;
}

export interface Stage {
  /** `Stage:` name, if any. */
  name?: string;
  bootstrap: Bootstrap;
  /** Header keys, lower-cased, as written (values with trailing comments removed). */
  header: Record<string, HeaderValue>;
  setup?: ScriptSection;
  files: FilesSection[];
  post?: ScriptSection;
  environment?: ScriptSection;
  runscript?: ScriptSection;
  startscript?: ScriptSection;
  labels: Record<string, string>;
  help?: ScriptSection;
  test?: ScriptSection;
  apps: App[];
  /** The text of this stage (after substitution): what goes into the image as its definition file. */
  text: string;
  pos: Position;
}

export interface Recipe {
  file: string;
  stages: Stage[];
  /** The build arguments used (name -> value), and those given but never used. */
  args: Record<string, string>;
  unusedArgs: string[];
  warnings: string[];
  /** The whole file after substitution. */
  text: string;
}

export interface ParseOptions {
  /** `--build-arg` values (win over %arguments defaults). */
  buildArgs?: Record<string, string>;
}

function at(p: Position): string {
  return `${p.file}:${p.line}:${p.col}`;
}

function syntax(pos: Position, msg: string, hint: string): WarrenError {
  return new WarrenError('BUILD_DEF_SYNTAX', `${at(pos)}: ${msg}`, { hint, details: { ...pos } });
}

const SECTION_RE = /^%([A-Za-z][A-Za-z0-9_-]*)(?:[ \t]+(.*?))?[ \t]*$/;
const HEADER_RE = /^([A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(.*)$/;
const ARG_REF_RE = /\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}/g;
const BOOTSTRAP_LINE_RE = /^bootstrap[ \t]*:/i;
const APP_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Strip a trailing ` # comment` from a header value. */
function headerValue(raw: string): string {
  const m = /(^|[ \t])#/.exec(raw);
  return (m ? raw.slice(0, m.index) : raw).trim();
}

/** Does this text look like a definition file (its first non-comment line is a `Bootstrap:` header)? */
export function looksLikeDefinition(text: string): boolean {
  for (const raw of text.split(/\r?\n/)) {
    const l = raw.trim();
    if (!l || l.startsWith('#')) continue;
    return /^bootstrap[ \t]*:/i.test(l);
  }
  return false;
}

/** Parse `KEY=VALUE` lines of a %arguments section or a --build-arg-file. */
export function parseArgLines(lines: { text: string; pos: Position }[], what: string): Record<string, { value: string; pos: Position }> {
  const out: Record<string, { value: string; pos: Position }> = {};
  for (const { text, pos } of lines) {
    const l = text.trim();
    if (!l || l.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(.*)$/.exec(l);
    if (!m) {
      throw new WarrenError('BUILD_ARG_INVALID', `${at({ ...pos, col: pos.col + (text.length - text.trimStart().length) })}: ${what} line "${l}" is not NAME=VALUE`, {
        hint: 'write one argument a line as NAME=VALUE (NAME: letters, digits, _; not starting with a digit)',
        details: { ...pos },
      });
    }
    let v = m[2]!.trim();
    if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) v = v.slice(1, -1);
    out[m[1]!] = { value: v, pos };
  }
  return out;
}

/** Parse --build-arg values (`K=V`). */
export function parseBuildArgs(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    const k = i > 0 ? kv.slice(0, i) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw new WarrenError('BUILD_ARG_INVALID', `--build-arg "${kv}" is not NAME=VALUE`, { hint: 'give --build-arg NAME=VALUE (NAME: letters, digits, _; not starting with a digit)' });
    }
    out[k] = kv.slice(i + 1);
  }
  return out;
}

/** Parse a --build-arg-file (`NAME=VALUE` a line; `#` comments). */
export function parseBuildArgFile(text: string, file: string): Record<string, string> {
  const lines = text.split(/\r?\n/).map((t, i) => ({ text: t, pos: { file, line: i + 1, col: 1 } }));
  return Object.fromEntries(Object.entries(parseArgLines(lines, 'build argument file')).map(([k, v]) => [k, v.value]));
}

interface Line {
  text: string;
  n: number;
}

/**
 * Parse a definition file. `file` names it in messages. Build arguments: the `%arguments`
 * sections give defaults, `opts.buildArgs` override them; every `{{ NAME }}` outside
 * %arguments is replaced, an unset one without a default is an error at its position.
 */
export function parseDefinition(text: string, file: string, opts: ParseOptions = {}): Recipe {
  const rawLines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (rawLines.length && rawLines[rawLines.length - 1] === '') rawLines.pop();
  const warnings: string[] = [];

  // Pass 1: find the %arguments sections (before substitution: they define what is substituted).
  const defaults: Record<string, { value: string; pos: Position }> = {};
  const argLines = new Set<number>();
  {
    let inArgs = false;
    for (let i = 0; i < rawLines.length; i++) {
      const l = rawLines[i]!;
      const sec = SECTION_RE.exec(l);
      if (sec || BOOTSTRAP_LINE_RE.test(l)) {
        inArgs = !!sec && sec[1]!.toLowerCase() === 'arguments';
        if (inArgs) argLines.add(i);
        continue;
      }
      if (inArgs) {
        argLines.add(i);
        Object.assign(defaults, parseArgLines([{ text: l, pos: { file, line: i + 1, col: 1 } }], '%arguments'));
      }
    }
  }
  const given = opts.buildArgs ?? {};
  const used = new Set<string>();
  const args: Record<string, string> = {};
  const lines: Line[] = rawLines.map((l, i) => {
    if (argLines.has(i)) return { text: l, n: i + 1 };
    const out = l.replace(ARG_REF_RE, (_m, name: string, offset: number) => {
      used.add(name);
      const v = Object.prototype.hasOwnProperty.call(given, name) ? given[name] : defaults[name]?.value;
      if (v === undefined) {
        const pos = { file, line: i + 1, col: offset + 1 };
        throw new WarrenError('BUILD_ARG_MISSING', `${at(pos)}: build argument ${name} is used but not set, and %arguments gives it no default`, {
          hint: `give it with --build-arg ${name}=VALUE (or in a --build-arg-file), or add "${name}=DEFAULT" to a %arguments section`,
          details: { ...pos, argument: name },
        });
      }
      args[name] = v;
      return v;
    });
    return { text: out, n: i + 1 };
  });
  const unusedArgs = Object.keys(given).filter((k) => !used.has(k)).sort();
  for (const k of unusedArgs) warnings.push(`build argument ${k} is given but the definition file never uses {{ ${k} }}`);

  // Pass 2: stages, headers and sections.
  const stages: Stage[] = [];
  let i = 0;
  const skipBlank = () => {
    while (i < lines.length && (!lines[i]!.text.trim() || lines[i]!.text.trim().startsWith('#'))) i++;
  };
  skipBlank();
  if (i >= lines.length) {
    throw new WarrenError('BUILD_DEF_NO_BOOTSTRAP', `${file}:1:1: the definition file is empty: it has no "Bootstrap:" header`, {
      hint: 'start it with a header, e.g. "Bootstrap: docker" and "From: debian:12"',
      details: { file, line: 1, col: 1 },
    });
  }
  while (i < lines.length) {
    const stageStart = i;
    const header: Record<string, HeaderValue> = {};
    // Header: Key: value lines until the first section.
    while (i < lines.length) {
      const { text: l, n } = lines[i]!;
      const t = l.trim();
      if (!t || t.startsWith('#')) {
        i++;
        continue;
      }
      if (SECTION_RE.test(l)) break;
      const col = l.length - l.trimStart().length + 1;
      const pos = { file, line: n, col };
      const m = HEADER_RE.exec(t);
      if (!m) {
        if (t.startsWith('%')) {
          throw syntax(pos, `"${t.split(/\s/)[0]}" must start at the beginning of the line to open a section`, 'write section names such as %post at column 1');
        }
        throw syntax(pos, `header line "${t}" is not "Key: value"`, 'write header lines as "Key: value" (e.g. "From: debian:12"), or start a section with %post, %files, ...');
      }
      const key = m[1]!.toLowerCase();
      if (key === 'bootstrap' && Object.keys(header).length) break; // the next stage (one without sections before it)
      if (Object.keys(header).length === 0 && key !== 'bootstrap') {
        throw new WarrenError('BUILD_DEF_NO_BOOTSTRAP', `${at(pos)}: the header starts with "${m[1]}:", but a stage must start with "Bootstrap:"`, {
          hint: `put "Bootstrap: docker" (or oras, localimage, scratch, busybox, debootstrap) on the first line of the header${key === 'bootstrap' ? '' : didYouMean(key, ['bootstrap']) ? ' (did you mean "Bootstrap"?)' : ''}`,
          details: { ...pos },
        });
      }
      if (header[key]) {
        throw syntax(pos, `header key "${m[1]}" given twice in one stage (first at line ${header[key]!.pos.line})`, 'keep one of the two lines');
      }
      if (!KNOWN_HEADER_KEYS.includes(key)) {
        const s = didYouMean(key, KNOWN_HEADER_KEYS);
        warnings.push(`${at(pos)}: header key "${m[1]}" is not used by any bootstrap${s ? ` (did you mean "${s}"?)` : ''}`);
      }
      header[key] = { value: headerValue(m[2]!), pos: { file, line: n, col: col + (t.length - t.slice(t.indexOf(':') + 1).trimStart().length) } };
      i++;
    }
    const first = lines[stageStart]!;
    const stagePos: Position = { file, line: first.n, col: 1 };
    if (!header.bootstrap) {
      throw new WarrenError('BUILD_DEF_NO_BOOTSTRAP', `${at(stagePos)}: the definition file has a section before any "Bootstrap:" header`, {
        hint: 'start the file with a header, e.g. "Bootstrap: docker" and "From: debian:12", before %post and the other sections',
        details: { ...stagePos },
      });
    }
    const bs = header.bootstrap;
    const bsName = bs.value.toLowerCase();
    if (!bsName) throw syntax(bs.pos, '"Bootstrap:" has no value', 'name the bootstrap, e.g. "Bootstrap: docker"');
    if (!(SUPPORTED_BOOTSTRAPS as readonly string[]).includes(bsName)) {
      if (REFUSED_BOOTSTRAPS[bsName]) {
        throw new WarrenError('BUILD_BOOTSTRAP_UNSUPPORTED', `${at(bs.pos)}: bootstrap "${bs.value}" is not supported by Warren`, { hint: REFUSED_BOOTSTRAPS[bsName], details: { ...bs.pos, bootstrap: bs.value } });
      }
      const s = didYouMean(bsName, [...SUPPORTED_BOOTSTRAPS, ...Object.keys(REFUSED_BOOTSTRAPS)]);
      throw new WarrenError('BUILD_BOOTSTRAP_UNKNOWN', `${at(bs.pos)}: unknown bootstrap "${bs.value}"`, {
        hint: `${s ? `did you mean "${s}"? ` : ''}Warren builds from: ${SUPPORTED_BOOTSTRAPS.join(', ')}`,
        details: { ...bs.pos, bootstrap: bs.value },
      });
    }
    const bootstrap = bsName as Bootstrap;
    if (['docker', 'oras', 'localimage'].includes(bootstrap) && !header.from?.value) {
      const pos = header.from?.pos ?? bs.pos;
      throw new WarrenError('BUILD_DEF_MISSING_FROM', `${at(pos)}: "Bootstrap: ${bs.value}" needs a "From:" header naming the base image`, {
        hint:
          bootstrap === 'localimage'
            ? 'add "From: /path/to/base.sif" (a SIF file or a root file system directory)'
            : `add "From: ${bootstrap === 'oras' ? 'registry.example/NAME:TAG (a SIF stored in an OCI registry)' : 'NAME:TAG (e.g. debian:12, or HOST:PORT/NAME:TAG)'}"`,
        details: { ...pos },
      });
    }
    if (header.stage && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(header.stage.value)) {
      throw syntax(header.stage.pos, `stage name "${header.stage.value}" is not a name`, 'use letters, digits, ".", "_" and "-", e.g. "Stage: build"');
    }
    const stage: Stage = { bootstrap, header, files: [], labels: {}, apps: [], text: '', pos: stagePos };
    if (header.stage) {
      const dup = stages.find((s) => s.name === header.stage!.value);
      if (dup) throw syntax(header.stage.pos, `stage "${header.stage.value}" is defined twice (first at line ${dup.pos.line})`, 'give each stage its own name');
      stage.name = header.stage.value;
    }

    // Sections, until the next stage's Bootstrap: line.
    while (i < lines.length) {
      const { text: l, n } = lines[i]!;
      if (BOOTSTRAP_LINE_RE.test(l)) break;
      const sec = SECTION_RE.exec(l);
      if (!sec) {
        // Only blank lines and comments can be here (right after the header is handled above).
        i++;
        continue;
      }
      const pos: Position = { file, line: n, col: 1 };
      const name = sec[1]!.toLowerCase();
      // A trailing ` # comment` on a section line is not an argument.
      const argText = (sec[2] ?? '').replace(/(^|[ \t])#.*$/, '').trim();
      i++;
      const bodyStart = i;
      while (i < lines.length && !SECTION_RE.test(lines[i]!.text) && !BOOTSTRAP_LINE_RE.test(lines[i]!.text)) i++;
      let bodyEnd = i;
      // Comments and blank lines just before the next stage's Bootstrap: belong to that stage.
      if (i < lines.length) while (bodyEnd > bodyStart && (!lines[bodyEnd - 1]!.text.trim() || lines[bodyEnd - 1]!.text.trim().startsWith('#'))) bodyEnd--;
      const bodyLines = lines.slice(bodyStart, bodyEnd);
      // A line starting with % that is not a known section ends nothing: it is an error (Apptainer's rule).
      if (!(STAGE_SECTIONS as readonly string[]).includes(name) && !(APP_SECTIONS as readonly string[]).includes(name)) {
        const s = didYouMean(name, [...STAGE_SECTIONS, ...APP_SECTIONS]);
        throw new WarrenError('BUILD_DEF_UNKNOWN_SECTION', `${at(pos)}: unknown section "%${sec[1]}"`, {
          hint: `${s ? `did you mean "%${s}"? ` : ''}sections are ${STAGE_SECTIONS.map((x) => '%' + x).join(' ')} and for SCIF apps ${APP_SECTIONS.map((x) => '%' + x + ' NAME').join(' ')}; a script line starting with % must be indented`,
          details: { ...pos, section: sec[1] },
        });
      }
      addSection(stage, name, argText, bodyLines, pos, file);
    }
    // The stage's own text (header + sections), for the image's definition file.
    const end = i;
    stage.text = lines.slice(stageStart, end).map((l) => l.text).join('\n').replace(/\s+$/, '') + '\n';
    stages.push(stage);
  }

  // %files from STAGE: an earlier stage.
  for (let s = 0; s < stages.length; s++) {
    for (const f of stages[s]!.files) {
      if (f.from === undefined) continue;
      const idx = stages.findIndex((x) => x.name === f.from);
      if (idx < 0 || idx >= s) {
        const names = stages.slice(0, s).map((x) => x.name).filter(Boolean) as string[];
        throw new WarrenError('BUILD_DEF_UNKNOWN_STAGE', `${at(f.pos)}: "%files from ${f.from}": ${idx === s ? 'a stage cannot copy from itself' : idx > s ? `stage "${f.from}" comes later in the file` : `there is no stage named "${f.from}"`}`, {
          hint: names.length ? `copy from an earlier stage: ${names.join(', ')}` : 'name the earlier stage with "Stage: NAME" in its header and copy with "%files from NAME"',
          details: { ...f.pos, stage: f.from },
        });
      }
    }
  }
  return { file, stages, args, unusedArgs, warnings, text: lines.map((l) => l.text).join('\n') + '\n' };
}

/** Script body: the lines as written, leading and trailing blank lines removed. */
function scriptBody(body: Line[]): string {
  const t = body.map((l) => l.text);
  while (t.length && !t[0]!.trim()) t.shift();
  while (t.length && !t[t.length - 1]!.trim()) t.pop();
  return t.length ? t.join('\n') + '\n' : '';
}

/** `-c /bin/bash` after a script section's name. */
function scriptArgs(section: string, argText: string, pos: Position): string | undefined {
  if (!argText) return undefined;
  const m = /^-c[ \t]+(\S+)$/.exec(argText);
  if (!m) throw syntax({ ...pos, col: section.length + 3 }, `%${section} takes no arguments but "-c SHELL" (got "${argText}")`, `write "%${section}" alone, or "%${section} -c /bin/bash" to run it with another shell`);
  if (!m[1]!.startsWith('/')) throw syntax({ ...pos, col: section.length + 3 }, `the shell of %${section} -c must be an absolute path (got "${m[1]}")`, `e.g. "%${section} -c /bin/bash"`);
  return m[1];
}

/** Split a %files line into words, with '...' and "..." quoting. */
function splitWords(s: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let q: string | null = null;
  let have = false;
  for (const c of s) {
    if (q) {
      if (c === q) q = null;
      else cur += c;
    } else if (c === '"' || c === "'") {
      q = c;
      have = true;
    } else if (c === ' ' || c === '\t') {
      if (have || cur) out.push(cur);
      cur = '';
      have = false;
    } else cur += c;
  }
  if (q) return undefined;
  if (have || cur) out.push(cur);
  return out;
}

function parseFileLines(body: Line[], file: string, section: string): FileCopy[] {
  const out: FileCopy[] = [];
  for (const { text, n } of body) {
    const t = text.trim();
    if (!t || t.startsWith('#')) continue;
    const pos = { file, line: n, col: text.length - text.trimStart().length + 1 };
    const w = splitWords(t);
    if (!w) throw syntax(pos, `unterminated quote in ${section} line "${t}"`, 'close the quote');
    if (w.length > 2) throw syntax(pos, `${section} line "${t}" has ${w.length} words: expected "SOURCE [DESTINATION]"`, 'quote a path that contains spaces');
    if (!w[0]) throw syntax(pos, `${section} line "${t}" has an empty source`, 'give a source path');
    out.push({ src: w[0]!, dest: w[1] ?? w[0]!, pos });
  }
  return out;
}

function parseLabels(body: Line[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { text } of body) {
    const t = text.trim();
    if (!t || t.startsWith('#')) continue;
    const m = /^(\S+)(?:\s+(.*))?$/.exec(t)!;
    out[m[1]!] = (m[2] ?? '').trim();
  }
  return out;
}

function merge(prev: ScriptSection | undefined, next: ScriptSection): ScriptSection {
  // The same section twice: the bodies are run/written one after the other (the first one's shell).
  if (!prev) return next;
  return { ...prev, body: prev.body + next.body };
}

function addSection(stage: Stage, name: string, argText: string, body: Line[], pos: Position, file: string): void {
  if ((APP_SECTIONS as readonly string[]).includes(name)) {
    const appName = argText.split(/\s+/)[0] ?? '';
    if (!appName) throw syntax(pos, `%${name} needs the name of the app`, `write "%${name} NAME"`);
    if (argText.split(/\s+/).length > 1) throw syntax({ ...pos, col: name.length + 4 + appName.length }, `%${name} takes one app name (got "${argText}")`, `write "%${name} NAME"`);
    if (!APP_NAME_RE.test(appName)) throw syntax({ ...pos, col: name.length + 3 }, `app name "${appName}" is not a name`, 'use letters, digits, ".", "_" and "-" (not starting with "." or "-")');
    let app = stage.apps.find((a) => a.name === appName);
    if (!app) {
      app = { name: appName, labels: {}, files: [], pos };
      stage.apps.push(app);
    }
    const s: ScriptSection = { body: scriptBody(body), pos };
    switch (name as AppSection) {
      case 'appinstall':
        app.install = merge(app.install, s);
        break;
      case 'apprun':
        app.run = merge(app.run, s);
        break;
      case 'appenv':
        app.env = merge(app.env, s);
        break;
      case 'apphelp':
        app.help = merge(app.help, s);
        break;
      case 'apptest':
        app.test = merge(app.test, s);
        break;
      case 'appstart':
        app.start = merge(app.start, s);
        break;
      case 'applabels':
        Object.assign(app.labels, parseLabels(body));
        break;
      case 'appfiles':
        app.files.push(...parseFileLines(body, file, `%appfiles ${appName}`));
        break;
    }
    return;
  }
  const sec = name as StageSection;
  switch (sec) {
    case 'files': {
      let from: string | undefined;
      if (argText) {
        const m = /^from[ \t]+(\S+)$/i.exec(argText);
        if (!m) throw syntax({ ...pos, col: 8 }, `"%files ${argText}": expected "%files" or "%files from STAGE"`, 'write "%files from NAME" to copy from an earlier stage named with "Stage: NAME"');
        from = m[1];
      }
      stage.files.push({ ...(from !== undefined ? { from } : {}), entries: parseFileLines(body, file, '%files'), pos });
      return;
    }
    case 'labels':
      if (argText) throw syntax({ ...pos, col: 9 }, `%labels takes no arguments (got "${argText}")`, 'put the labels on the lines below, one "KEY VALUE" a line');
      Object.assign(stage.labels, parseLabels(body));
      return;
    case 'arguments':
      return; // read in pass 1
    case 'environment':
    case 'help':
      if (argText) throw syntax({ ...pos, col: name.length + 3 }, `%${name} takes no arguments (got "${argText}")`, `write "%${name}" alone on its line`);
      stage[sec] = merge(stage[sec], { body: scriptBody(body), pos });
      return;
    case 'setup':
    case 'post':
    case 'test':
    case 'runscript':
    case 'startscript': {
      const shell = scriptArgs(name, argText, pos);
      stage[sec] = merge(stage[sec], { body: scriptBody(body), ...(shell ? { shell } : {}), pos });
      return;
    }
  }
}
