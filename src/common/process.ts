// Small process helpers shared by subsystems.
import { readFileSync } from 'node:fs';

/**
 * Is a process with this pid alive (also when it belongs to another user)? A zombie is not:
 * it has ended, only its exit status waits for a parent that may never collect it (an
 * orphan whose reaper does not reap).
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) STATE ...: comm may hold spaces and parentheses, the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}
