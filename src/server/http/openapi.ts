// The OpenAPI document of the HTTPS API, generated from the routes' JSON schemas
// (@fastify/swagger) and kept at docs/api/openapi.json. Regenerate it with `npm run openapi`
// (= npx tsc -p tsconfig.json && node dist/src/server/http/openapi.js > docs/api/openapi.json);
// (test/server/openapi.test.ts fails when the file is stale). Keys are sorted and nothing
// in it depends on the machine, the time or the server's address.

import { pathToFileURL } from 'node:url';
import type { WarrenClient, AdminClient } from '../../api/index.js';
import { buildApiServer, type ApiBackend } from './app.js';

export { OPENAPI_COMMAND } from './constants.js';

const unused = (): never => {
  throw new Error('the OpenAPI generator serves no request');
};

/** The document as an object (keys sorted). */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const backend: ApiBackend = {
    authenticate: unused,
    client: () => new Proxy({}, { get: unused }) as WarrenClient & AdminClient,
    health: unused,
  };
  // node:https needs no certificate to build a server that never listens.
  const s = await buildApiServer({ backend, https: {} });
  try {
    await s.app.ready();
    return sortKeys(s.app.swagger()) as Record<string, unknown>;
  } finally {
    await s.close();
  }
}

/** The document as docs/api/openapi.json holds it: pretty-printed, with a final newline. */
export async function openApiText(): Promise<string> {
  return JSON.stringify(await openApiDocument(), null, 2) + '\n';
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(await openApiText());
}
