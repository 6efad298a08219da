// What a job is told about the services of its workflow (docs/workflow-format.md, "Services
// at run time"): pure functions of the services' specs and where they run.
//
// Fuzzball's names: FB_ENDPOINT_URL_<ENDPOINT> and FB_ENDPOINT_PATH_<ENDPOINT> for each
// endpoint, FB_ENDPOINT_PATH (a service's own first endpoint); services are reached as
// `NAME.svc`. Warren's twins: WARREN_ENDPOINT_URL_<ENDPOINT>, WARREN_ENDPOINT_PATH_<ENDPOINT>,
// WARREN_ENDPOINT_PATH, and per service WARREN_SERVICE_<NAME>_HOST, _PORT (its first port),
// _PORT_<PORTNAME> and _URL (its first endpoint's URL).
//
// Warren has no endpoint gateway: an endpoint is its service's port itself, reached at the
// node's address. So its URL is `http://HOST:PORT/` for http and https endpoints (an https
// endpoint is TLS terminated by Fuzzball's gateway; the service behind it speaks HTTP),
// `grpc://HOST:PORT` for grpc and grpcs, `tcp://HOST:PORT` for tcp and tls. A `path` endpoint
// is served under `/<service>/<endpoint>` (its FB_ENDPOINT_PATH, which such services honour),
// a `subdomain` endpoint at `/`.

import type { ServiceEndpoint, ServiceSpec } from '../workflow/index.js';
import type { ServiceLocation } from './contract.js';

/** A name as part of an environment variable's: upper case, [A-Z0-9_]. */
export function envName(s: string): string {
  return s.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

/** The path an endpoint is served under (no trailing slash, `/` for the root). */
export function endpointPath(service: string, e: ServiceEndpoint): string {
  return e.type === 'path' ? `/${service}/${e.name}` : '/';
}

/** The URL an endpoint is reached at, straight on its service's port. */
export function endpointUrl(service: string, spec: ServiceSpec, e: ServiceEndpoint, host: string): string | undefined {
  const port = spec.ports.find((p) => p.name === e.portName);
  if (!port) return undefined;
  const h = host.includes(':') ? `[${host}]` : host;
  if (e.protocol === 'http' || e.protocol === 'https') {
    const path = endpointPath(service, e);
    return `http://${h}:${port.port}${path === '/' ? '/' : `${path}/`}`;
  }
  return `${e.protocol === 'grpc' || e.protocol === 'grpcs' ? 'grpc' : 'tcp'}://${h}:${port.port}`;
}

/**
 * The variables of a job (or service) of a workflow: for each reachable service (`others`, and
 * the job itself when it is a service: `self`), where it is; every endpoint's URL and path
 * (a service's own endpoints win over another's of the same name; among others, the first in
 * the list wins).
 */
export function serviceEnv(self: { name: string; spec: ServiceSpec; host: string } | null, others: ServiceLocation[]): Record<string, string> {
  const env: Record<string, string> = {};
  const endpoints = new Set<string>();
  const add = (name: string, spec: ServiceSpec, host: string, own: boolean): void => {
    const s = envName(name);
    env[`WARREN_SERVICE_${s}_HOST`] = host;
    if (spec.ports[0]) env[`WARREN_SERVICE_${s}_PORT`] = String(spec.ports[0].port);
    for (const p of spec.ports) env[`WARREN_SERVICE_${s}_PORT_${envName(p.name)}`] = String(p.port);
    let first: string | undefined;
    for (const e of spec.endpoints) {
      const url = endpointUrl(name, spec, e, host);
      if (!url) continue;
      first ??= url;
      const k = envName(e.name);
      if (endpoints.has(k) && !own) continue;
      endpoints.add(k);
      const path = endpointPath(name, e);
      env[`FB_ENDPOINT_URL_${k}`] = env[`WARREN_ENDPOINT_URL_${k}`] = url;
      env[`FB_ENDPOINT_PATH_${k}`] = env[`WARREN_ENDPOINT_PATH_${k}`] = path;
    }
    if (first) env[`WARREN_SERVICE_${s}_URL`] = first;
    if (own && spec.endpoints[0]) env.FB_ENDPOINT_PATH = env.WARREN_ENDPOINT_PATH = endpointPath(name, spec.endpoints[0]);
  };
  if (self) add(self.name, self.spec, self.host, true);
  for (const o of others) if (o.name !== self?.name) add(o.name, o.spec, o.host, false);
  return env;
}

/** `/etc/hosts` lines that make `NAME.svc` resolve to where each service is (containers). */
export function hostsLines(services: { name: string; host: string }[]): string {
  return services.map((s) => `${s.host}\t${s.name}.svc\n`).join('');
}
