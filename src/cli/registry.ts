// Command groups contributed by the subsystems, wired in one place.
import type { Command } from 'commander';
import { register as registerSpec } from './commands/spec.js';

export function registerAll(program: Command): void {
  registerSpec(program);
}
