// The Apptainer/Singularity layout of a built image, written into the tree:
//   /.singularity.d/Singularity             the definition file
//   /.singularity.d/labels.json             labels (tab-indented JSON, as Apptainer writes it)
//   /.singularity.d/runscript, startscript, test, runscript.help
//   /.singularity.d/env/01-base.sh, 10-docker2singularity.sh (base image env), 90-environment.sh
//                       (%environment), 91-environment.sh (what %post appended to
//                       $APPTAINER_ENVIRONMENT), 94-appsbase.sh, 95-apps.sh, 99-base.sh
//   /.singularity.d/actions/exec, run, shell, start, test     (source env/*.sh, then act)
//   /.exec /.run /.shell /.test /singularity /environment     (links, as Apptainer makes them)
//   SCIF apps (scif.github.io): /scif/apps/NAME/{bin,lib,scif/{runscript,runscript.help,test,
//                       startscript,labels.json,env/90-environment.sh}} and /scif/data/NAME/{input,output}
// The action and env scripts are Warren's own, with the behaviour of Apptainer's.
import { chmodSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageConfig } from '../image/index.js';
import type { App, ScriptSection, Stage } from './deffile.js';
import { existsInTree, isDirInTree, mkdirInTree, readInTree, resolveInRoot, writeInTree } from './copy.js';

export const SD = '.singularity.d';
/** Environment files shown by `inspect --environment` (the ones a recipe or base defines). */
export const USER_ENV_FILES = ['10-docker2singularity.sh', '90-environment.sh', '91-environment.sh'];

/** A section as a script file: `#!SHELL` then a blank line then the body (Apptainer's form). */
export function scriptFile(s: ScriptSection): string {
  return `#!${s.shell ?? '/bin/sh'}\n\n${s.body}`;
}

/** `'...'` quoting for sh. */
export function shq(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

const SOURCE_ENV = `for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
`;

const ACTIONS: Record<string, string> = {
  exec: `#!/bin/sh\n# Warren: source the image environment, then run the command.\n${SOURCE_ENV}\nexec "$@"\n`,
  run: `#!/bin/sh
# Warren: source the image environment, then run the app's or the image's runscript.
${SOURCE_ENV}
app="\${APPTAINER_APPNAME:-\${SINGULARITY_APPNAME:-}}"
if [ -n "$app" ]; then
    if [ -x "/scif/apps/$app/scif/runscript" ]; then
        exec "/scif/apps/$app/scif/runscript" "$@"
    fi
    echo "no runscript for app $app" >&2
    exit 1
fi
if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "no runscript in the image: running /bin/sh" >&2
exec /bin/sh "$@"
`,
  shell: `#!/bin/sh
# Warren: source the image environment, then start a shell.
${SOURCE_ENV}
if [ -n "\${SINGULARITY_SHELL:-}" ] && [ -x "$SINGULARITY_SHELL" ]; then
    exec "$SINGULARITY_SHELL" "$@"
fi
if [ -x /bin/bash ]; then
    SHELL=/bin/bash
    export SHELL
    exec /bin/bash --norc "$@"
fi
SHELL=/bin/sh
export SHELL
exec /bin/sh "$@"
`,
  start: `#!/bin/sh
# Warren: source the image environment, then run the startscript (instances).
${SOURCE_ENV}
if [ -x /.singularity.d/startscript ]; then
    exec /.singularity.d/startscript "$@"
fi
`,
  test: `#!/bin/sh
# Warren: source the image environment, then run the app's or the image's %test.
${SOURCE_ENV}
app="\${APPTAINER_APPNAME:-\${SINGULARITY_APPNAME:-}}"
if [ -n "$app" ]; then
    if [ -x "/scif/apps/$app/scif/test" ]; then
        exec "/scif/apps/$app/scif/test" "$@"
    fi
    echo "no test for app $app" >&2
    exit 1
fi
if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "no %test in the image" >&2
exec /bin/sh -c true
`,
};

const ENV_BASE = `#!/bin/sh
# Warren: base environment of the image (sourced first).
`;

const ENV_APPS = `#!/bin/sh
# Warren: the environment of the SCIF app being run (APPTAINER_APPNAME).
app="\${APPTAINER_APPNAME:-\${SINGULARITY_APPNAME:-}}"
if [ -n "$app" ]; then
    if [ ! -d "/scif/apps/$app" ]; then
        echo "no app $app in the image" >&2
        exit 1
    fi
    SCIF_APPNAME="$app"
    SCIF_APPS=/scif/apps
    SCIF_APPROOT="/scif/apps/$app"
    SCIF_APPDATA="/scif/data/$app"
    APPTAINER_APPNAME="$app"
    export SCIF_APPNAME SCIF_APPS SCIF_APPROOT SCIF_APPDATA APPTAINER_APPNAME
    PATH="/scif/apps/$app:$PATH"
    if [ -d "/scif/apps/$app/bin" ]; then
        PATH="/scif/apps/$app/bin:$PATH"
    fi
    if [ -d "/scif/apps/$app/lib" ]; then
        LD_LIBRARY_PATH="/scif/apps/$app/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export LD_LIBRARY_PATH
    fi
    for f in "/scif/apps/$app/scif/env/"*.sh; do
        if [ -f "$f" ]; then
            . "$f"
        fi
    done
    export PATH
fi
`;

const ENV_99 = `#!/bin/sh
# Warren: last environment script: the image's own libraries, the prompt.
LD_LIBRARY_PATH="\${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/.singularity.d/libs"
PS1="Apptainer> "
export LD_LIBRARY_PATH PS1
`;

/** `/.singularity.d/env/10-docker2singularity.sh`: the base image's environment as exports. */
export function dockerEnvScript(env: string[]): string {
  const lines = ['#!/bin/sh'];
  for (const kv of env) {
    const i = kv.indexOf('=');
    const k = i < 0 ? kv : kv.slice(0, i);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) continue;
    const v = i < 0 ? '' : kv.slice(i + 1);
    lines.push(`export ${k}="\${${k}:-${v.replace(/["\\$`]/g, (c) => '\\' + c)}}"`);
  }
  return lines.join('\n') + '\n';
}

/** A runscript from the base image's ENTRYPOINT and CMD (arguments replace CMD). */
export function ociRunscript(c: ImageConfig): string | undefined {
  const ep = c.entrypoint ?? [];
  const cmd = c.cmd ?? [];
  if (!ep.length && !cmd.length) return undefined;
  const q = (a: string[]) => a.map(shq).join(' ');
  return `#!/bin/sh
# Warren: generated from the base image's ENTRYPOINT and CMD; arguments replace CMD.
if [ $# -gt 0 ]; then
    ${ep.length ? `exec ${q(ep)} "$@"` : 'exec "$@"'}
fi
exec ${q([...ep, ...cmd])}
`;
}

/** The 94-appsbase.sh: where each app is (SCIF_APPROOT_NAME, ...), for every app. */
function appsBase(apps: string[]): string {
  const lines: string[] = [];
  for (const a of [...apps].sort()) {
    const v = a.replace(/[^A-Za-z0-9_]/g, '_');
    const vars: [string, string][] = [
      [`SCIF_APPDATA_${v}`, `/scif/data/${a}`],
      [`SCIF_APPMETA_${v}`, `/scif/apps/${a}/scif`],
      [`SCIF_APPROOT_${v}`, `/scif/apps/${a}`],
      [`SCIF_APPBIN_${v}`, `/scif/apps/${a}/bin`],
      [`SCIF_APPLIB_${v}`, `/scif/apps/${a}/lib`],
      [`SCIF_APPENV_${v}`, `/scif/apps/${a}/scif/env/90-environment.sh`],
      [`SCIF_APPLABELS_${v}`, `/scif/apps/${a}/scif/labels.json`],
      [`SCIF_APPRUN_${v}`, `/scif/apps/${a}/scif/runscript`],
    ];
    for (const [k, val] of vars) lines.push(`${k}=${shq(val)}`);
    lines.push(`export ${vars.map(([k]) => k).join(' ')}`);
  }
  return lines.length ? `#!/bin/sh\n${lines.join('\n')}\n` : '';
}

/** Tab-indented JSON with sorted keys (labels.json). */
export function labelsJson(labels: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return JSON.stringify(sorted, null, '\t');
}

/** The directories every image has (mount points of the runtime), and its placeholder files. */
export function ensureSystemTree(tree: string): void {
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc', 'root', 'home', 'var', 'var/tmp', 'mnt', 'opt', 'srv']) {
    if (!existsInTree(tree, d)) mkdirInTree(tree, d);
  }
  for (const [d, m] of [['tmp', 0o1777], ['var/tmp', 0o1777]] as const) {
    try {
      const p = resolveInRoot(tree, d);
      if (statSync(p).isDirectory()) chmodSync(p, m);
    } catch {
      /* not a directory: leave it */
    }
  }
  for (const f of ['etc/hosts', 'etc/resolv.conf']) {
    if (!existsInTree(tree, f) && isDirInTree(tree, 'etc')) writeInTree(tree, f, '', 0o644);
  }
}

/** Make the SCIF directories of an app (before its files and %appinstall). */
export function makeAppDirs(tree: string, app: App): void {
  for (const d of [`scif/apps/${app.name}/bin`, `scif/apps/${app.name}/lib`, `scif/apps/${app.name}/scif/env`, `scif/data/${app.name}/input`, `scif/data/${app.name}/output`]) mkdirInTree(tree, d);
}

/** Write an app's SCIF metadata (runscript, help, env, labels, test, startscript). */
export function writeAppMeta(tree: string, app: App): void {
  const meta = `/scif/apps/${app.name}/scif`;
  mkdirInTree(tree, `${meta}/env`);
  if (app.run) writeInTree(tree, `${meta}/runscript`, scriptFile(app.run), 0o755);
  if (app.help) writeInTree(tree, `${meta}/runscript.help`, app.help.body, 0o644);
  if (app.test) writeInTree(tree, `${meta}/test`, scriptFile(app.test), 0o755);
  if (app.start) writeInTree(tree, `${meta}/startscript`, scriptFile(app.start), 0o755);
  writeInTree(tree, `${meta}/env/90-environment.sh`, `#!/bin/sh\n# Custom environment shell code should follow\n\n${app.env?.body ?? ''}`, 0o755);
  writeInTree(tree, `${meta}/labels.json`, labelsJson({ SCIF_APP_NAME: app.name, ...app.labels }), 0o644);
}

export interface StageMeta {
  stage: Stage;
  /** The definition file stored in the image (the whole file). */
  deffile: string;
  base?: ImageConfig;
  /** Labels added by Warren (org.label-schema.*). */
  buildLabels: Record<string, string>;
}

/** The apps of the tree (also those a base image brought). */
function appsOf(tree: string): string[] {
  try {
    const dir = resolveInRoot(tree, '/scif/apps');
    return readdirSync(dir).filter((a) => isDirInTree(tree, `/scif/apps/${a}`)).sort();
  } catch {
    return [];
  }
}

/** Write /.singularity.d (see the header) for a finished stage. Every path is resolved inside the tree. */
export function writeStageMeta(tree: string, m: StageMeta): void {
  const sd = `/${SD}`;
  for (const d of ['actions', 'env', 'libs']) mkdirInTree(tree, `${sd}/${d}`);
  const s = m.stage;
  writeInTree(tree, `${sd}/Singularity`, m.deffile, 0o644);
  for (const [name, text] of Object.entries(ACTIONS)) writeInTree(tree, `${sd}/actions/${name}`, text, 0o755);
  const env = `${sd}/env`;
  if (!existsInTree(tree, `${env}/01-base.sh`)) writeInTree(tree, `${env}/01-base.sh`, ENV_BASE, 0o755);
  if (m.base?.env.length) writeInTree(tree, `${env}/10-docker2singularity.sh`, dockerEnvScript(m.base.env), 0o755);
  if (s.environment || !existsInTree(tree, `${env}/90-environment.sh`)) {
    writeInTree(tree, `${env}/90-environment.sh`, `#!/bin/sh\n# Custom environment shell code should follow\n\n${s.environment?.body ?? ''}`, 0o755);
  }
  writeInTree(tree, `${env}/94-appsbase.sh`, appsBase(appsOf(tree)), 0o755);
  writeInTree(tree, `${env}/95-apps.sh`, ENV_APPS, 0o755);
  if (!existsInTree(tree, `${env}/99-base.sh`)) writeInTree(tree, `${env}/99-base.sh`, ENV_99, 0o755);

  if (s.runscript) writeInTree(tree, `${sd}/runscript`, scriptFile(s.runscript), 0o755);
  else if (!existsInTree(tree, `${sd}/runscript`) && m.base) {
    const r = ociRunscript(m.base);
    if (r) writeInTree(tree, `${sd}/runscript`, r, 0o755);
  }
  if (s.startscript) writeInTree(tree, `${sd}/startscript`, scriptFile(s.startscript), 0o755);
  else if (!existsInTree(tree, `${sd}/startscript`)) writeInTree(tree, `${sd}/startscript`, '#!/bin/sh\n', 0o755);
  if (s.test) writeInTree(tree, `${sd}/test`, scriptFile(s.test), 0o755);
  if (s.help) writeInTree(tree, `${sd}/runscript.help`, s.help.body, 0o644);

  let labels: Record<string, string> = {};
  try {
    const doc = JSON.parse(readInTree(tree, `${sd}/labels.json`) ?? '{}') as unknown;
    if (doc && typeof doc === 'object' && !Array.isArray(doc)) for (const [k, v] of Object.entries(doc)) labels[k] = typeof v === 'string' ? v : JSON.stringify(v);
  } catch {
    /* none from the base, or not JSON */
  }
  labels = { ...(m.base?.labels ?? {}), ...labels, ...m.buildLabels, ...s.labels };
  writeInTree(tree, `${sd}/labels.json`, labelsJson(labels), 0o644);

  for (const [link, target] of [
    ['.exec', '.singularity.d/actions/exec'],
    ['.run', '.singularity.d/actions/run'],
    ['.shell', '.singularity.d/actions/shell'],
    ['.test', '.singularity.d/actions/test'],
    ['singularity', '.singularity.d/runscript'],
    ['environment', '.singularity.d/env/90-environment.sh'],
  ] as const) {
    if (!existsInTree(tree, link)) symlinkSync(target, join(tree, link));
  }
}

/** Apptainer's `inspect-metadata.json` for the finished tree: {"data":{"attributes":{...}},"type":"container"}. */
export function inspectMetadata(tree: string, deffile: string): Buffer {
  const sd = `/${SD}`;
  const attributes: Record<string, unknown> = {};
  const environment: Record<string, string> = {};
  for (const f of USER_ENV_FILES) {
    const t = readInTree(tree, `${sd}/env/${f}`);
    if (t !== undefined) environment[`/.singularity.d/env/${f}`] = t;
  }
  if (Object.keys(environment).length) attributes.environment = environment;
  try {
    attributes.labels = JSON.parse(readInTree(tree, `${sd}/labels.json`) ?? 'null') ?? undefined;
  } catch {
    /* none */
  }
  for (const [k, f] of [['runscript', 'runscript'], ['startscript', 'startscript'], ['test', 'test'], ['helpfile', 'runscript.help']] as const) {
    const t = readInTree(tree, `${sd}/${f}`);
    if (t !== undefined) attributes[k] = t;
  }
  attributes.deffile = deffile;
  const apps = appsOf(tree);
  if (apps.length) attributes.apps = apps;
  return Buffer.from(JSON.stringify({ data: { attributes }, type: 'container' }), 'utf8');
}

/** Apptainer's `oci-config.json`: the image's OCI config (Env, Entrypoint, Cmd, WorkingDir, User, Labels). */
export function ociConfigDocument(c: ImageConfig): Buffer {
  const out: Record<string, unknown> = { Env: c.env.length ? c.env : ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] };
  if (c.entrypoint?.length) out.Entrypoint = c.entrypoint;
  if (c.cmd?.length) out.Cmd = c.cmd;
  if (c.workingDir) out.WorkingDir = c.workingDir;
  if (c.user) out.User = c.user;
  if (Object.keys(c.labels).length) out.Labels = c.labels;
  return Buffer.from(JSON.stringify(out), 'utf8');
}
