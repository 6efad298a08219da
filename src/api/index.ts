// The client API (embedded in the CLI, or HTTPS to a server): see types.ts.
export * from './types.js';
export { EmbeddedClient, dataMover } from './embedded.js';
export type { EmbeddedOptions } from './embedded.js';
