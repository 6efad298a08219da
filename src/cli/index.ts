// The `warren` command line. Each command group lives in ./commands/<name>.ts and
// registers itself here; errors are WarrenErrors printed as `error[CODE]: message` with a
// hint, and the exit code says what happened (0 ok, 1 failed, 2 bad input, 130 canceled).

import { Command, CommanderError } from 'commander';
import { EXIT, ensureWarrenHome, toWarrenError } from '../common/index.js';
import { PROGRAM_DESCRIPTION, PROGRAM_VERSION, isGroupCommand, registerAll, staticHelp } from './registry.js';

/** Commands that never touch `$WARREN_HOME` (so they do not create it). */
const NO_HOME = new Set(['validate', 'schema', 'help', 'context', 'install', 'upgrade', 'app']);

export async function buildProgram(command?: string, runsImage = false): Promise<Command> {
  const program = new Command('warren')
    .description(PROGRAM_DESCRIPTION)
    .version(PROGRAM_VERSION)
    .showSuggestionAfterError(true)
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .enablePositionalOptions()
    .exitOverride();
  if (runsImage) {
    // `warren run IMAGE`: the image's runscript (commands/exec.ts), not a workflow.
    (await import('./commands/exec.js')).registerRunImage(program);
    return program;
  }
  // The ad-hoc container commands load only their own module: they must start fast.
  if (command !== undefined && ['exec', 'shell', 'instance'].includes(command)) {
    (await import('./commands/exec.js')).register(program);
    return program;
  }
  // The workflow verbs (run.js: the store, the data movers, the HTTP client: ~300 modules)
  // only for themselves, for an unknown command (commander's did-you-mean) and for --help.
  if (command === undefined || !isGroupCommand(command)) (await import('./commands/run.js')).register(program);
  await registerAll(program, command);
  return program;
}

/** Options of `warren run` (workflow or image) that take a value: the word after them is not the argument. */
const RUN_VALUE_OPTIONS = new Set(['-B', '--bind', '--env', '--env-file', '-H', '--home', '--pwd', '-o', '--overlay', '--network', '--hostname', '--app', '--key', '--passphrase-env', '--platform', '--store', '--cores', '--context', '--server', '--token', '--name', '--set', '--values', '-f', '--values-file']);

/** The first argument of `warren run` (skipping options and their values), if any. */
function runArgument(args: string[]): string | undefined {
  for (let i = args.indexOf('run') + 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return undefined;
    if (!a.startsWith('-')) return a;
    if (!a.includes('=') && RUN_VALUE_OPTIONS.has(a)) i++;
  }
  return undefined;
}

/** Is the first argument of `warren run` an image (src/agent/adhoc's looksLikeImage decides)? */
async function runsImage(args: string[]): Promise<boolean> {
  const arg = runArgument(args);
  return arg !== undefined && (await import('../agent/adhoc/index.js')).looksLikeImage(arg);
}

export async function main(argv: string[]): Promise<number> {
  // `warren list | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  const args = argv.slice(2);
  // The top-level help and version come from static tables: no command module is loaded.
  if (args.length === 0 || (args.length === 1 && ['--help', '-h', 'help'].includes(args[0]!))) {
    process.stdout.write(staticHelp());
    return EXIT.ok;
  }
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    process.stdout.write(PROGRAM_VERSION + '\n');
    return EXIT.ok;
  }
  const command = args.find((a) => !a.startsWith('-'));
  try {
    // Private from the start (0700): it will hold images, logs, credentials and keys.
    if (command !== undefined && !NO_HOME.has(command)) ensureWarrenHome();
  } catch (e) {
    const err = toWarrenError(e);
    process.stderr.write(err.format() + '\n');
    return err.exitCode;
  }
  const program = await buildProgram(command, command === 'run' && (await runsImage(args)));
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      // commander already printed its message; add what to do next.
      process.stderr.write('  hint: see `warren --help` or `warren COMMAND --help`\n');
      return EXIT.usage;
    }
    const err = toWarrenError(e);
    process.stderr.write(err.format() + '\n');
    if (process.env.WARREN_DEBUG && err.cause) process.stderr.write(String((err.cause as Error).stack ?? err.cause) + '\n');
    return err.exitCode;
  }
}
