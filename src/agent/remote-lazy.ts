// AgentDaemon (./remote.ts) on first use: it loads undici and the mesh.
import type { AgentDaemon } from './remote.js';

/** The report journal in the agent's data directory (JSON lines, 0600). */
export const JOURNAL_FILE = 'reports.journal';

/** The AgentDaemon class: `new (await loadAgentDaemon())({serverUrl, name, dataDir, agent, token, caPem})`. */
export async function loadAgentDaemon(): Promise<typeof AgentDaemon> {
  return (await import('./remote.js')).AgentDaemon;
}
