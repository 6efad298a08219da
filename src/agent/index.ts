// Node agents: admission against cores and memory, and execution through a runtime.
export { LocalAgent } from './local.js';
export type { AgentTask, AgentListener, LocalAgentOptions } from './local.js';
