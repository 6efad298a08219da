// Command groups contributed by the subsystems, wired in one place.
import type { Command } from 'commander';

export function registerAll(program: Command): void {
  void program;
}
