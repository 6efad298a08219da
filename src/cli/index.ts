// The `warren` command line. Each command group lives in ./commands/<name>.ts and
// registers itself here; errors are WarrenErrors printed as `error[CODE]: message` with a
// hint, and the exit code says what happened (0 ok, 1 failed, 2 bad input, 130 canceled).

import { Command, CommanderError } from 'commander';
import { EXIT, toWarrenError } from '../common/index.js';
import { register as registerRun } from './commands/run.js';
import { registerAll } from './registry.js';

export async function buildProgram(command?: string): Promise<Command> {
  const program = new Command('warren')
    .description('Warren: run workflows fast, anywhere — from one workstation to HPC clusters and clouds')
    .version('0.1.0')
    .showSuggestionAfterError(true)
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .exitOverride();
  registerRun(program);
  await registerAll(program, command);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  // `warren list | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  const program = await buildProgram(argv.slice(2).find((a) => !a.startsWith('-')));
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
