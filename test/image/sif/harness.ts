// Runs `warren` with the SIF commands registered (src/cli/commands/sif.ts), as the CLI's main
// entry does: prints `error[CODE]: message` + hint and exits with the error's exit code.
// Used by the CLI tests as a child process: node [loader] harness.js ARGS...
import { Command, CommanderError } from 'commander';
import { toWarrenError } from '../../../src/common/index.js';
import { register } from '../../../src/cli/commands/sif.js';

const program = new Command('warren').exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s) });
register(program);
try {
  await program.parseAsync(process.argv);
  process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.code === 'commander.helpDisplayed' ? 0 : 2);
  const err = toWarrenError(e);
  process.stderr.write(err.format() + '\n');
  process.exit(err.exitCode);
}
