// The client API (embedded in the CLI, or HTTPS to a server): see types.ts.
export * from './types.js';
export { EmbeddedClient, dataMover, untilBuilt } from './embedded.js';
export type { EmbeddedOptions } from './embedded.js';
export type { WhoAmI, HealthView, LiveView, ReadyView, ServerStatusView } from './wire.js';
export { SSE_HEARTBEAT_MS, LOG_ERROR_TRAILER } from './wire.js';
export { HttpClient, checkServerUrl, SSE_RETRIES } from './http.js';
export type { HttpClientOptions } from './http.js';
export { forwardPort } from './forward.js';
export type { PortForward, PortForwardOptions } from './forward.js';
