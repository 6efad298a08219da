// Where Warren keeps its state on this machine.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$WARREN_HOME`, default `~/.local/share/warren` (XDG data dir when set). */
export function warrenHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WARREN_HOME) return env.WARREN_HOME;
  if (env.XDG_DATA_HOME) return join(env.XDG_DATA_HOME, 'warren');
  return join(homedir(), '.local', 'share', 'warren');
}
