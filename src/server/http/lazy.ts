// The API server and its OpenAPI generator, loaded on first use: fastify and its plugins
// take ~0.15 s to load, which `warren run` (that imports the orchestrator from this
// subsystem) must not pay.
import type { ApiServer, ApiServerOptions } from './app.js';

/** Build the HTTPS API server (see ./app.ts). */
export async function buildApiServer(o: ApiServerOptions): Promise<ApiServer> {
  return (await import('./app.js')).buildApiServer(o);
}

/** The OpenAPI document as an object, keys sorted (see ./openapi.ts). */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  return (await import('./openapi.js')).openApiDocument();
}

/** The OpenAPI document as docs/api/openapi.json holds it. */
export async function openApiText(): Promise<string> {
  return (await import('./openapi.js')).openApiText();
}
