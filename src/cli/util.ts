// Small helpers shared by the CLI command modules.
import { chmodSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { WarrenError } from '../common/index.js';

/** The subcommand `name` of `program`, created once (so several modules can add to `image`). */
export function commandGroup(program: Command, name: string, description: string): Command {
  const found = program.commands.find((c) => c.name() === name);
  return found ?? program.command(name).description(description);
}

/**
 * Write a command's output file: to a temporary file beside it, then renamed over it, so a
 * reader never sees half a file (an existing file keeps its mode). Throws CLI_OUTPUT_UNWRITABLE.
 */
export function writeOutputFile(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    let mode: number | undefined;
    try {
      mode = statSync(path).mode & 0o7777;
    } catch {
      mode = undefined;
    }
    writeFileSync(tmp, text, mode !== undefined ? { mode } : {});
    if (mode !== undefined) chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // not created
    }
    const code = (e as NodeJS.ErrnoException).code;
    throw new WarrenError('CLI_OUTPUT_UNWRITABLE', `cannot write ${path}: ${(e as Error).message}`, {
      hint: code === 'ENOENT' ? 'the directory does not exist: create it, or write elsewhere with -o' : code === 'EACCES' || code === 'EPERM' ? 'check the permissions of the file and its directory' : 'check the path and the free disk space',
      cause: e,
    });
  }
}
