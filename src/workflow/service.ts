// Services' own keys: `network` (ports, endpoints, host) and `readiness-probe`. Pure.
import { suggestion } from './diagnostics.js';
import { badName, NAME_RULE } from './limits.js';
import { Reader, short, type Seg } from './reader.js';
import type { ReadinessProbe, ServiceEndpoint, ServicePort } from './types.js';
import { JOB_NAME_RE } from './wfformat.js';

const NETWORK_KEYS = ['ports', 'endpoints', 'host'];
const PORT_KEYS = ['name', 'port', 'protocol'];
const ENDPOINT_KEYS = ['name', 'port-name', 'protocol', 'type', 'scope'];
const PROBE_ACTIONS = ['http-get', 'tcp-socket', 'exec', 'grpc'] as const;
const PROBE_TIMING = ['initial-delay-seconds', 'period-seconds', 'timeout-seconds', 'success-threshold', 'failure-threshold'] as const;
const PROBE_KEYS = [...PROBE_ACTIONS, ...PROBE_TIMING];
const HTTP_GET_KEYS = ['path', 'port', 'scheme', 'http-headers'];
const HEADER_KEYS = ['name', 'value'];

const PORT_PROTOCOLS: readonly ServicePort['protocol'][] = ['tcp', 'udp'];
const ENDPOINT_PROTOCOLS: readonly ServiceEndpoint['protocol'][] = ['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls'];
const ENDPOINT_TYPES: readonly ServiceEndpoint['type'][] = ['subdomain', 'path'];
const ENDPOINT_SCOPES: readonly ServiceEndpoint['scope'][] = ['user', 'group', 'organization', 'public'];

/** Kubernetes' defaults, which Fuzzball's probes follow. */
export const PROBE_DEFAULTS = { initialDelaySec: 0, periodSec: 10, timeoutSec: 1, successThreshold: 1, failureThreshold: 3 } as const;

const PORT_HINT = 'a port is a whole number from 1 to 65535';

/** A port as read, with where it was written (for the checks across services). */
export interface PortDraft extends ServicePort {
  path: Seg[];
}

export interface NetworkDraft {
  ports: PortDraft[];
  endpoints: ServiceEndpoint[];
  host: boolean;
}

export function portNumber(r: Reader, v: unknown, path: Seg[]): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && (v < 1 || v > 65535)) {
    r.error(path, `port ${v} is out of range`, PORT_HINT);
    return undefined;
  }
  return r.int(v, path, 1, 65535);
}

/** `services.S.network`: `{ports: [{name, port, protocol}], endpoints: [...], host}`. */
export function readServiceNetwork(r: Reader, v: unknown, path: Seg[]): NetworkDraft | undefined {
  const o = r.obj(v, path, NETWORK_KEYS, 'a service network', Object.fromEntries(['isolated', 'expose-tcp', 'expose-udp', 'exposeTcp', 'exposeUdp'].map((k) => [k, `a service's network has ports, endpoints and host; "${k}" is a key of a job's network`])));
  if (!o) return undefined;
  const out: NetworkDraft = { ports: [], endpoints: [], host: false };
  if (o.host !== undefined) {
    const h = r.bool(o.host, [...path, 'host']);
    if (h !== undefined) out.host = h;
  }
  const ports = o.ports === undefined ? [] : r.list(o.ports, [...path, 'ports'], 'a list of ports ({name, port, protocol})');
  const byName = new Map<string, PortDraft>();
  ports?.forEach((item, i) => {
    const p = [...path, 'ports', i];
    const po = r.obj(item, p, PORT_KEYS, 'a port');
    if (!po) return;
    for (const k of ['name', 'port']) if (po[k] === undefined) r.error(p, `missing required key "${k}"`, 'e.g. {name: web, port: 8080, protocol: tcp}');
    const name = po.name === undefined ? undefined : r.str(po.name, [...p, 'name']);
    if (name !== undefined) {
      const bad = badName(name, JOB_NAME_RE);
      if (bad) r.error([...p, 'name'], `invalid port name "${short(name)}": it ${bad}`, NAME_RULE);
      else if (byName.has(name)) r.error([...p, 'name'], `port name "${name}" is used twice in this service`, 'give each port its own name');
    }
    const port = po.port === undefined ? undefined : portNumber(r, po.port, [...p, 'port']);
    const protocol = po.protocol === undefined ? 'tcp' : r.choice(po.protocol, [...p, 'protocol'], PORT_PROTOCOLS);
    if (name === undefined || port === undefined || protocol === undefined || byName.has(name)) return;
    const d: PortDraft = { name, port, protocol, path: [...p, 'port'] };
    byName.set(name, d);
    out.ports.push(d);
  });
  const endpoints = o.endpoints === undefined ? [] : r.list(o.endpoints, [...path, 'endpoints'], 'a list of endpoints ({name, port-name, protocol, type, scope})');
  const endpointNames = new Set<string>();
  endpoints?.forEach((item, i) => {
    const p = [...path, 'endpoints', i];
    const eo = r.obj(item, p, ENDPOINT_KEYS, 'an endpoint');
    if (!eo) return;
    for (const k of ['name', 'port-name']) if (eo[k] === undefined) r.error(p, `missing required key "${k}"`, 'e.g. {name: web, port-name: web, protocol: http, type: subdomain, scope: user}');
    const name = eo.name === undefined ? undefined : r.str(eo.name, [...p, 'name']);
    if (name !== undefined) {
      const bad = badName(name, JOB_NAME_RE);
      if (bad) r.error([...p, 'name'], `invalid endpoint name "${short(name)}": it ${bad}`, NAME_RULE);
      else if (endpointNames.has(name)) r.error([...p, 'name'], `endpoint name "${name}" is used twice in this service`, 'give each endpoint its own name');
    }
    const portName = eo['port-name'] === undefined ? undefined : r.str(eo['port-name'], [...p, 'port-name']);
    let port: PortDraft | undefined;
    if (portName !== undefined) {
      port = byName.get(portName);
      if (!port && ports !== undefined) {
        const names = [...byName.keys()];
        r.error([...p, 'port-name'], `unknown port "${short(portName)}"${suggestion(portName, names)}`, names.length > 0 ? `ports of this service: ${names.join(', ')}` : 'declare it under network.ports, e.g. ports: [{name: web, port: 8080, protocol: tcp}]');
      }
    }
    const protocol = eo.protocol === undefined ? 'http' : r.choice(eo.protocol, [...p, 'protocol'], ENDPOINT_PROTOCOLS);
    const type = eo.type === undefined ? 'subdomain' : r.choice(eo.type, [...p, 'type'], ENDPOINT_TYPES);
    const scope = eo.scope === undefined ? 'group' : r.choice(eo.scope, [...p, 'scope'], ENDPOINT_SCOPES);
    if (port && protocol !== undefined && port.protocol === 'udp') {
      r.error([...p, 'port-name'], `endpoint "${name ?? i}" (${protocol}) names port "${port.name}", which is udp`, 'endpoints run over TCP: point it at a tcp port');
      return;
    }
    if (name === undefined || port === undefined || protocol === undefined || type === undefined || scope === undefined || endpointNames.has(name)) return;
    endpointNames.add(name);
    out.endpoints.push({ name, portName: port.name, protocol, type, scope });
  });
  return out;
}

/**
 * A probe's port: a number (1..65535; it need not be declared under `network.ports`), or the
 * name of a declared port.
 */
function probePort(r: Reader, v: unknown, path: Seg[], ports: readonly PortDraft[]): number | undefined {
  if (typeof v === 'string' && !/^\s*[-+]?[0-9]+\s*$/.test(v)) {
    const p = ports.find((x) => x.name === v);
    if (p) return p.port;
    const names = ports.map((x) => x.name);
    r.error(path, `unknown port "${short(v)}"${suggestion(v, names)}`, names.length > 0 ? `write a port number, or one of this service's ports: ${names.join(', ')}` : 'write a port number, or declare the port under network.ports and use its name');
    return undefined;
  }
  return portNumber(r, v, path);
}

/** `readiness-probe`: exactly one action, and Kubernetes' timing keys. */
export function readProbe(r: Reader, v: unknown, path: Seg[], ports: readonly PortDraft[]): ReadinessProbe | undefined {
  const o = r.obj(v, path, PROBE_KEYS, 'a readiness probe');
  if (!o) return undefined;
  const actions = PROBE_ACTIONS.filter((k) => o[k] !== undefined);
  let ok = true;
  if (actions.length === 0) {
    r.error(path, 'the readiness probe has no action', 'give it one of http-get: {path, port}, tcp-socket: {port}, exec: {command: [...]} or grpc: {port}', true);
    ok = false;
  } else if (actions.length > 1) {
    r.error([...path, actions[1]!], `the readiness probe has ${actions.length} actions (${actions.join(', ')})`, 'a probe checks one thing: keep exactly one of http-get, tcp-socket, exec and grpc', true);
    ok = false;
  }
  const timing: Record<(typeof PROBE_TIMING)[number], number> = {
    'initial-delay-seconds': PROBE_DEFAULTS.initialDelaySec,
    'period-seconds': PROBE_DEFAULTS.periodSec,
    'timeout-seconds': PROBE_DEFAULTS.timeoutSec,
    'success-threshold': PROBE_DEFAULTS.successThreshold,
    'failure-threshold': PROBE_DEFAULTS.failureThreshold,
  };
  for (const k of PROBE_TIMING) {
    if (o[k] === undefined) continue;
    const n = r.int(o[k], [...path, k], k === 'initial-delay-seconds' ? 0 : 1);
    if (n === undefined) ok = false;
    else timing[k] = n;
  }
  if (actions.length !== 1) return undefined;
  const kind = actions[0]!;
  const p = [...path, kind];
  let action: ReadinessProbe['action'] | undefined;
  if (kind === 'http-get') {
    const h = r.obj(o[kind], p, HTTP_GET_KEYS, 'http-get');
    if (!h) return undefined;
    if (h.port === undefined) {
      r.error(p, 'missing required key "port"', 'e.g. http-get: {path: /health, port: 8080}', true);
      return undefined;
    }
    const port = probePort(r, h.port, [...p, 'port'], ports);
    let hpath = '/';
    if (h.path !== undefined) {
      const s = r.str(h.path, [...p, 'path']);
      if (s === undefined) return undefined;
      if (!s.startsWith('/')) {
        r.error([...p, 'path'], `the path must start with "/", got "${short(s)}"`, `write /${s}`);
        return undefined;
      }
      hpath = s;
    }
    const scheme = h.scheme === undefined ? 'http' : r.choice(h.scheme, [...p, 'scheme'], ['http', 'https'] as const);
    const headers: { name: string; value: string }[] = [];
    const list = h['http-headers'] === undefined ? [] : r.list(h['http-headers'], [...p, 'http-headers'], 'a list of {name, value}');
    let headersOk = list !== undefined;
    list?.forEach((item, i) => {
      const hp = [...p, 'http-headers', i];
      const ho = r.obj(item, hp, HEADER_KEYS, 'an HTTP header');
      if (!ho) return void (headersOk = false);
      if (ho.name === undefined) {
        r.error(hp, 'missing required key "name"', 'e.g. {name: Authorization, value: "Bearer TOKEN"}');
        return void (headersOk = false);
      }
      const name = r.str(ho.name, [...hp, 'name']);
      if (name !== undefined && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
        r.error([...hp, 'name'], `invalid HTTP header name "${short(name)}"`, 'header names are letters, digits and !#$%&\'*+.^_`|~-');
        return void (headersOk = false);
      }
      const value = ho.value === undefined ? '' : typeof ho.value === 'number' || typeof ho.value === 'boolean' ? String(ho.value) : r.str(ho.value, [...hp, 'value'], false);
      if (value !== undefined && /[\r\n]/.test(value)) {
        r.error([...hp, 'value'], 'an HTTP header value may not contain a line break', 'write the value on one line');
        return void (headersOk = false);
      }
      if (name === undefined || value === undefined) return void (headersOk = false);
      headers.push({ name, value });
    });
    if (port === undefined || scheme === undefined || !headersOk) return undefined;
    action = { kind: 'http', path: hpath, port, scheme: scheme === 'https' ? 'HTTPS' : 'HTTP', headers };
  } else if (kind === 'tcp-socket' || kind === 'grpc') {
    const keys = kind === 'grpc' ? ['port', 'service'] : ['port'];
    const t = r.obj(o[kind], p, keys, kind);
    if (!t) return undefined;
    if (t.port === undefined) {
      r.error(p, 'missing required key "port"', `e.g. ${kind}: {port: 8080}`, true);
      return undefined;
    }
    const port = probePort(r, t.port, [...p, 'port'], ports);
    const service = t.service === undefined ? undefined : r.str(t.service, [...p, 'service'], false);
    if (port === undefined || (t.service !== undefined && service === undefined)) return undefined;
    action = kind === 'tcp-socket' ? { kind: 'tcp', port } : { kind: 'grpc', port, ...(service ? { service } : {}) };
  } else {
    const e = r.obj(o[kind], p, ['command'], 'exec');
    if (!e) return undefined;
    if (e.command === undefined) {
      r.error(p, 'missing required key "command"', 'e.g. exec: {command: [cat, /tmp/ready]}', true);
      return undefined;
    }
    const command = r.words(e.command, [...p, 'command'], 'command');
    if (command === undefined) return undefined;
    if (command.length === 0) {
      r.error([...p, 'command'], 'command must not be empty', 'give the program and its arguments, e.g. [cat, /tmp/ready]');
      return undefined;
    }
    action = { kind: 'exec', command };
  }
  if (!ok) return undefined;
  return {
    action,
    initialDelaySec: timing['initial-delay-seconds'],
    periodSec: timing['period-seconds'],
    timeoutSec: timing['timeout-seconds'],
    successThreshold: timing['success-threshold'],
    failureThreshold: timing['failure-threshold'],
  };
}

