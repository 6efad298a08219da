// Small helpers shared by the CLI command modules.
import type { Command } from 'commander';

/** The subcommand `name` of `program`, created once (so several modules can add to `image`). */
export function commandGroup(program: Command, name: string, description: string): Command {
  const found = program.commands.find((c) => c.name() === name);
  return found ?? program.command(name).description(description);
}
