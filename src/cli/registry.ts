// Command groups contributed by the subsystems, wired in one place. Each module is loaded
// only when its command runs (or for --help), so `warren run` does not pay for the S3 SDK
// or the registry client at start-up.
import type { Command } from 'commander';

type Loader = () => Promise<{ register(program: Command): void }>;

const GROUPS: [commands: string[], load: Loader][] = [
  [['validate', 'schema'], () => import('./commands/workflow.js')],
  [['plan', 'site'], () => import('./commands/plan.js')],
  [['cache'], () => import('./commands/cache.js')],
  [['image', 'registry'], () => import('./commands/image.js')],
  [['image', 'key'], () => import('./commands/sif.js')],
];

/** Register the command groups `command` needs (all of them when it is not one of theirs). */
export async function registerAll(program: Command, command: string | undefined): Promise<void> {
  const mine = GROUPS.filter(([names]) => command !== undefined && names.includes(command));
  const builtin = ['run', 'resume', 'list', 'status', 'logs', 'cancel'];
  if (command !== undefined && builtin.includes(command)) return;
  for (const [, load] of mine.length ? mine : GROUPS) (await load()).register(program);
}
