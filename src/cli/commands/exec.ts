// `warren exec IMAGE CMD...`, `warren shell IMAGE`, `warren run IMAGE [ARGS...]` and
// `warren instance start|list|stop`: Apptainer's habits on Warren's runtime. Parse and render
// only: the work is src/agent's runAdhocContainer and instances (always on this machine).
// Options after IMAGE belong to the container's command.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { WarrenError, warrenHome } from '../../common/index.js';

interface AdhocCliOpts {
  cwd?: string;
  writable?: boolean;
  fakeroot?: boolean;
  key?: string;
  passphraseEnv?: string;
  bind?: string[];
  mount?: string[];
  contain?: boolean;
  containall?: boolean;
  cleanenv?: boolean;
  env?: string[];
  envFile?: string[];
  /** A path (`--home`), or false (`--no-home`). */
  home?: string | false;
  pwd?: string;
  writableTmpfs?: boolean;
  overlay?: string[];
  nv?: boolean;
  net?: boolean;
  network?: string;
  hostname?: string;
  app?: string;
  shell?: string;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The caller's directory; one that was removed under the shell is an error that says so. */
function callerCwd(): string {
  try {
    return process.cwd();
  } catch {
    throw new WarrenError('CLI_BAD_OPTION', 'the current directory no longer exists, so it cannot be bound into the container', {
      hint: 'cd to an existing directory first (or give the directory inside with --pwd and --contain)',
    });
  }
}

/** The container options shared by exec, shell, run and instance start. */
export function addAdhocOptions(cmd: Command): Command {
  return cmd
    .option('-B, --bind <SRC[:DST[:ro]]>', 'bind a path of this machine into the container (repeatable; several separated by commas; also $WARREN_BIND)', collect)
    .option('-f, --fakeroot', 'be root inside (root of a user namespace of yours: root over the container\'s files, nobody outside)')
    .option('-c, --contain', 'do not bind the home directory, the current directory and /tmp; a private /dev')
    .option('-C, --containall', 'as --contain, plus own PID and IPC namespaces and a clean environment')
    .option('-e, --cleanenv', "do not pass this machine's environment (TERM, proxies and locale only)")
    .option('--env <KEY=VALUE>', 'set a variable inside (repeatable; wins over the image)', collect)
    .option('--env-file <FILE>', 'set the variables of a KEY=VALUE file inside (repeatable)', collect)
    .option('-H, --home <SRC[:DST]>', 'the home directory to bind (default: yours)')
    .option('--no-home', 'do not bind the home directory (HOME is still set)')
    .option('--pwd <DIR>', 'the working directory inside')
    .option('--cwd <DIR>', 'the same as --pwd')
    .option('-w, --writable', 'change a sandbox directory in place')
    .option('--writable-tmpfs', 'let the container write to its file system; the changes are discarded at the end')
    .option('-o, --overlay <DIR|IMAGE[:ro]>', 'an overlay on the image: a directory keeps the changes (DIR:ro and squashfs images are read-only layers)', collect)
    .option('--nv', "pass this machine's NVIDIA GPUs and driver libraries through")
    .option('-n, --net', 'a network namespace of its own (with --network)')
    .option('--network <TYPE>', 'with --net: none (loopback only)')
    .option('--hostname <NAME>', 'the hostname inside (its own UTS namespace)')
    .option('--app <NAME>', 'the SCIF app to run (its runscript and environment)')
    .option('-k, --key <FILE|FINGERPRINT>', 'an encrypted image: the RSA private key it was encrypted to (PEM file, or a stored key)')
    .option('--passphrase-env <VAR>', 'an encrypted image: the environment variable holding its passphrase');
}

/** The command line's options as the runner's request (validated here, before anything starts). */
export async function adhocRequestOf(o: AdhocCliOpts, cwd: string): Promise<Record<string, unknown>> {
  const rt = await import('../../runtime/container/index.js');
  const binds = [] as ReturnType<typeof rt.parseBinds>;
  const fromEnv = process.env.WARREN_BIND ?? process.env.APPTAINER_BIND ?? process.env.SINGULARITY_BIND;
  if (fromEnv) binds.push(...rt.parseBinds(fromEnv, cwd, process.env.WARREN_BIND ? '$WARREN_BIND' : process.env.APPTAINER_BIND ? '$APPTAINER_BIND' : '$SINGULARITY_BIND'));
  for (const b of o.bind ?? []) binds.push(...rt.parseBinds(b, cwd, `--bind ${b}`));
  const env: [string, string][] = [];
  for (const f of o.envFile ?? []) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw new WarrenError('CLI_BAD_ENV', `--env-file ${f}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { hint: 'check the path of the env file' });
    }
    env.push(...Object.entries(rt.parseEnvFile(text, f)));
  }
  for (const e of o.env ?? []) env.push(rt.parseEnvArg(e));
  let network: 'host' | 'none' = 'host';
  if (o.network !== undefined || o.net) {
    const n = o.network ?? 'none';
    if (!o.net) throw new WarrenError('CLI_BAD_OPTION', '--network needs --net', { hint: 'write --net --network none' });
    if (n !== 'none') {
      throw new WarrenError('CLI_BAD_OPTION', `--network ${n}: ad-hoc containers support "none" (a network namespace with loopback only)`, {
        hint: "use --net --network none, or leave both out to share this machine's network",
      });
    }
    network = 'none';
  }
  if (o.hostname !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(o.hostname)) {
    throw new WarrenError('CLI_BAD_OPTION', `--hostname ${o.hostname} is not a valid host name`, { hint: 'letters, digits and dashes, at most 63 per label' });
  }
  return {
    binds,
    overlays: (o.overlay ?? []).map((v) => rt.parseOverlay(v, cwd)),
    writableTmpfs: o.writableTmpfs === true,
    ...(o.writable ? { writable: true } : {}),
    contain: o.contain === true,
    containall: o.containall === true,
    cleanenv: o.cleanenv === true,
    env,
    ...(typeof o.home === 'string' ? { home: o.home } : {}),
    ...(o.pwd !== undefined || o.cwd !== undefined ? { pwd: o.pwd ?? o.cwd } : {}),
    ...(o.home === false ? { noHome: true } : {}),
    network,
    ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
    nv: o.nv === true,
    ...(o.fakeroot ? { fakeroot: true } : {}),
    ...(o.app !== undefined ? { app: o.app } : {}),
    ...(o.shell !== undefined ? { shell: o.shell } : {}),
    ...(o.key !== undefined ? { key: o.key } : {}),
    ...(o.passphraseEnv !== undefined ? { passphraseEnv: o.passphraseEnv } : {}),
  };
}

async function runIt(action: 'exec' | 'run' | 'shell', image: string, args: string[], o: AdhocCliOpts): Promise<void> {
  const cwd = callerCwd();
  const agent = await import('../../agent/adhoc/index.js');
  const req = await adhocRequestOf(o, cwd);
  const home = warrenHome();
  const onWarning = (m: string): void => void process.stderr.write(`warning: ${m}\n`);
  if (image.startsWith('instance://')) {
    if (action !== 'exec' && action !== 'shell') throw new WarrenError('CLI_BAD_OPTION', `warren ${action} cannot take an instance (${image})`, { hint: `enter it with \`warren exec ${image} COMMAND\` or \`warren shell ${image}\`` });
    const { execInInstance } = agent;
    process.exitCode = await execInInstance({ home, name: image.slice('instance://'.length), action, args, request: req, onWarning });
    return;
  }
  process.exitCode = await agent.runAdhocContainer({ ...(req as object), action, args, imageArg: image, warrenHome: home, cwd, onWarning } as Parameters<typeof agent.runAdhocContainer>[0]);
}

/** `warren run IMAGE [ARGS...]` (registered instead of the workflow `run` when its argument is an image). */
export function registerRunImage(program: Command): void {
  addAdhocOptions(
    program
      .command('run')
      .description("run an image's runscript (or its entrypoint and cmd): a SIF file, a sandbox directory, docker://, oras://")
      .argument('<image>', 'a .sif file, a sandbox directory, docker://NAME:TAG, oras://NAME:TAG')
      .argument('[args...]', 'arguments of the runscript')
      .passThroughOptions(),
  ).action(async (image: string, args: string[], o: AdhocCliOpts) => runIt('run', image, args, o));
}

export function register(program: Command): void {
  addAdhocOptions(
    program
      .command('exec')
      .description('run a command in a container image on this machine, as yourself (Apptainer-style: your home, the current directory and /tmp bound)')
      .argument('<image>', 'a .sif file, a sandbox directory, docker://NAME:TAG, oras://NAME:TAG, or instance://NAME')
      .argument('<command...>', 'the command and its arguments')
      .passThroughOptions(),
  ).action(async (image: string, args: string[], o: AdhocCliOpts) => runIt('exec', image, args, o));

  addAdhocOptions(
    program
      .command('shell')
      .description('an interactive shell in a container image on this machine')
      .argument('<image>', 'a .sif file, a sandbox directory, docker://NAME:TAG, oras://NAME:TAG, or instance://NAME')
      .argument('[args...]', "the shell's arguments")
      .option('-s, --shell <PATH>', 'the shell to run (default /bin/bash, else /bin/sh)')
      .passThroughOptions(),
  ).action(async (image: string, args: string[], o: AdhocCliOpts) => runIt('shell', image, args, o));

  const inst = program.command('instance').description('long-running containers in the background: start, list, stop');
  addAdhocOptions(
    inst
      .command('start')
      .description("start an image's %startscript as a named instance, in the background, in its own PID namespace")
      .argument('<image>', 'a .sif file, a sandbox directory, docker://NAME:TAG, oras://NAME:TAG')
      .argument('<name>', 'the name of the instance (letters, digits, . _ -)')
      .argument('[args...]', 'arguments of the startscript')
      .passThroughOptions(),
  ).action(async (image: string, name: string, args: string[], o: AdhocCliOpts) => {
    const agent = await import('../../agent/adhoc/index.js');
    const cwd = callerCwd();
    const req = await adhocRequestOf(o, cwd);
    const r = await agent.startInstance({ home: warrenHome(), name, imageArg: image, args, request: req, cwd });
    process.stdout.write(`instance ${r.name} started (pid ${r.pid}); its output: ${r.logs.stdout}, ${r.logs.stderr}\n`);
  });
  inst
    .command('list')
    .description('the instances of this user on this machine')
    .option('--json', 'as JSON')
    .action(async (o: { json?: boolean }) => {
      const agent = await import('../../agent/adhoc/index.js');
      const list = await agent.listInstances(warrenHome());
      if (o.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      if (!list.length) {
        process.stdout.write('no instances\n');
        return;
      }
      const rows = [['NAME', 'PID', 'IMAGE', 'STARTED'], ...list.map((i) => [i.name, String(i.pid), i.image, i.startedAt])];
      const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      for (const r of rows) process.stdout.write(r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(w[c]! + 2))).join('') + '\n');
    });
  inst
    .command('stop')
    .description('stop an instance (SIGTERM, then SIGKILL after --timeout) and remove what it used')
    .argument('[name]', 'the instance')
    .option('-a, --all', 'stop every instance of this user')
    .option('-t, --timeout <SECONDS>', 'seconds between SIGTERM and SIGKILL', '10')
    .option('-F, --force', 'SIGKILL at once')
    .action(async (name: string | undefined, o: { all?: boolean; timeout: string; force?: boolean }) => {
      if (!name && !o.all) throw new WarrenError('CLI_BAD_OPTION', 'warren instance stop needs an instance name or --all', { hint: 'see them with `warren instance list`' });
      if (name && o.all) throw new WarrenError('CLI_BAD_OPTION', 'give an instance name or --all, not both', { hint: '`warren instance stop NAME` or `warren instance stop --all`' });
      const t = Number(o.timeout);
      if (!Number.isFinite(t) || t < 0) throw new WarrenError('CLI_BAD_OPTION', `--timeout ${o.timeout} is not a number of seconds`, { hint: 'e.g. --timeout 10' });
      const agent = await import('../../agent/adhoc/index.js');
      const stopped = await agent.stopInstances(warrenHome(), { ...(name ? { name } : {}), graceMs: o.force ? 0 : t * 1000 });
      for (const s of stopped) process.stdout.write(`instance ${s} stopped\n`);
      if (o.all && !stopped.length) process.stdout.write('no instances\n');
    });
}
