// Node agents: the agent contract, and the agent that runs work on this machine.
export * from './contract.js';
export { LocalAgent, logPaths, volumeDir } from './local.js';
export type { LocalAgentOptions } from './local.js';
