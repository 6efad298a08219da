// Where Warren keeps its state on this machine.
import { chmodSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** `$WARREN_HOME`, default `~/.local/share/warren` (XDG data dir when set). */
export function warrenHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WARREN_HOME) return env.WARREN_HOME;
  if (env.XDG_DATA_HOME) return join(env.XDG_DATA_HOME, 'warren');
  return join(homedir(), '.local', 'share', 'warren');
}

/**
 * Create `$WARREN_HOME` when it does not exist, private to its owner (0700, whatever the
 * umask): it holds the image cache, job logs, credentials and keys, which no other local
 * user of a shared node may reach. Missing parents get the usual mode (umask). An existing
 * directory is left as the user made it. Returns the path.
 */
export function ensureWarrenHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = warrenHome(env);
  mkdirSync(dirname(home), { recursive: true });
  try {
    mkdirSync(home, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return home;
    throw e;
  }
  chmodSync(home, 0o700);
  return home;
}
