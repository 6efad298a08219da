// Helper process for the CLI tests: runs the `image` and `registry` command groups the way
// the warren main entry does (error[CODE] + hint on stderr, exit code). Not a test itself.
import { Command, CommanderError } from 'commander';
import { register } from '../../../src/cli/commands/image.js';
import { toWarrenError } from '../../../src/common/index.js';

const program = new Command('warren').exitOverride();
register(program);
try {
  await program.parseAsync(process.argv.slice(2), { from: 'user' });
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = 2;
  else {
    const err = toWarrenError(e);
    process.stderr.write(err.format() + '\n');
    process.exitCode = err.exitCode;
  }
}
