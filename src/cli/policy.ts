// The node's policy file lives with the node's agent (src/agent/policy.ts).
export { nodePolicy } from '../agent/index.js';
export type { NodePolicy } from '../agent/index.js';
