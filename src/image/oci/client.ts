// A client for the OCI distribution API v2 over undici: /v2/ ping, anonymous, bearer
// token and basic auth, manifests, blob download streamed to disk with size and sha256
// verification, and monolithic blob upload + manifest push.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// undici (~65 ms to load) is imported at the first request, not with this module, so commands
// that only read local images start fast.
import type { Agent, Dispatcher } from 'undici';
import { WarrenError } from '../../common/index.js';
import { parseWwwAuthenticate, type RegistryAuth, type AuthChallenge } from './auth.js';
import { registryBaseUrl } from './ref.js';
import { loadRegistriesConfig } from './mirrors.js';
import { MANIFEST_ACCEPT, type Descriptor } from './types.js';

export interface RegistryClientOptions {
  auth?: RegistryAuth;
  /** Override the base URL (default: http for loopback, https otherwise). */
  baseUrl?: string;
  /** Parallel connections to the registry (default 8). */
  connections?: number;
  userAgent?: string;
  /**
   * This client talks to a registry mirror standing in for another registry: messages name
   * both (`mirror HOST of REGISTRY (set in ORIGIN)`). See mirrors.ts.
   */
  mirrorOf?: { registry: string; origin: string };
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
  json: Record<string, unknown>;
}

type Body = Buffer | string | Readable | undefined;

interface SendOptions {
  headers?: Record<string, string>;
  body?: Body;
  /** Token scope this request needs, e.g. `repository:library/busybox:pull`. */
  scope: string;
  /** What the request is about, for messages (`127.0.0.1:5000/x:1.0`). */
  what: string;
}

const MAX_MANIFEST = 8 * 1024 * 1024;

/** Map an HTTP error response of a registry to a WarrenError. */
function registryErrorCodes(text: string): string[] {
  try {
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    return (j.errors ?? []).map((e) => `${e.code ?? ''}${e.message ? `: ${e.message}` : ''}`);
  } catch {
    return [];
  }
}

export class RegistryClient {
  readonly registry: string;
  readonly baseUrl: string;
  /** The registry as messages name it: `HOST`, or `mirror HOST of REGISTRY (set in ORIGIN)`. */
  readonly label: string;
  private readonly mirrorOf: RegistryClientOptions['mirrorOf'];
  private readonly auth: RegistryAuth | undefined;
  private dispatcher: Agent | undefined;
  private readonly connections: number;
  private readonly userAgent: string;
  /** Authorization header per scope ('' = registry-wide, e.g. Basic). */
  private readonly authHeaders = new Map<string, string>();
  private basicHeader: string | undefined;
  /** Bytes of blob bodies received (for statistics). */
  bytesReceived = 0;
  /** Requests sent, by kind. */
  readonly requests = { manifest: 0, blob: 0, token: 0, other: 0 };

  constructor(registry: string, opts: RegistryClientOptions = {}) {
    this.registry = registry;
    // Plain HTTP for loopback, WARREN_INSECURE_REGISTRIES and the `insecure:` hosts of $WARREN_HOME/mirrors.yaml.
    this.baseUrl = opts.baseUrl ?? registryBaseUrl(registry, process.env, loadRegistriesConfig().insecure);
    this.mirrorOf = opts.mirrorOf;
    this.label = opts.mirrorOf ? `mirror ${registry} of ${opts.mirrorOf.registry} (set in ${opts.mirrorOf.origin})` : registry;
    this.auth = opts.auth;
    this.userAgent = opts.userAgent ?? 'warren/0.1';
    this.connections = opts.connections ?? 8;
  }

  async close(): Promise<void> {
    await this.dispatcher?.close().catch(() => undefined);
  }

  private unreachable(e: unknown, what: string): WarrenError {
    const err = e as Error & { code?: string; cause?: { code?: string } };
    const code = err.code ?? err.cause?.code ?? '';
    return new WarrenError('IMAGE_REGISTRY_UNREACHABLE', `cannot reach registry ${this.label} for ${what}: ${err.message}${code ? ` (${code})` : ''}`, {
      hint: this.mirrorOf
        ? `check that the mirror is up (tried ${this.baseUrl}/v2/), or correct or remove its rule in ${this.mirrorOf.origin}; a plain-HTTP mirror off loopback needs "insecure: true" or WARREN_INSECURE_REGISTRIES`
        : `check the registry host and port and that it is up (tried ${this.baseUrl}/v2/); for a plain-HTTP registry that is not on loopback, add it to WARREN_INSECURE_REGISTRIES`,
      cause: e,
    });
  }

  private async raw(method: string, url: string, headers: Record<string, string>, body: Body): Promise<Dispatcher.ResponseData> {
    const { Agent, request } = await import('undici');
    this.dispatcher ??= new Agent({
      connections: this.connections,
      keepAliveTimeout: 4_000,
      headersTimeout: 60_000,
      bodyTimeout: 120_000,
      connectTimeout: 15_000,
    });
    return request(url, {
      method: method as Dispatcher.HttpMethod,
      headers: { 'user-agent': this.userAgent, ...headers },
      ...(body !== undefined ? { body } : {}),
      dispatcher: this.dispatcher,
    });
  }

  private authFor(scope: string): string | undefined {
    return this.authHeaders.get(scope) ?? this.basicHeader;
  }

  /** Send a request, answering one auth challenge and following redirects (GET/HEAD). */
  private async send(method: string, path: string, o: SendOptions): Promise<Dispatcher.ResponseData> {
    let url = path.startsWith('http://') || path.startsWith('https://') ? path : this.baseUrl + path;
    const origin = new URL(this.baseUrl).origin;
    let challenged = false;
    for (let hop = 0; hop < 6; hop++) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      const sameOrigin = new URL(url).origin === origin;
      const authz = sameOrigin ? this.authFor(o.scope) : undefined;
      if (authz) headers.authorization = authz;
      let res: Dispatcher.ResponseData;
      try {
        res = await this.raw(method, url, headers, o.body);
      } catch (e) {
        if (e instanceof WarrenError) throw e;
        throw this.unreachable(e, o.what);
      }
      if (res.statusCode === 401 && sameOrigin && !challenged) {
        const text = await res.body.text().catch(() => '');
        const header = res.headers['www-authenticate'];
        const value = Array.isArray(header) ? header.join(', ') : header ?? '';
        const canReplay = o.body === undefined || Buffer.isBuffer(o.body) || typeof o.body === 'string';
        await this.answerChallenge(parseWwwAuthenticate(value), o, text);
        challenged = true;
        if (!canReplay) throw this.authError(o.what, 'the registry asked for credentials during an upload');
        continue;
      }
      if (res.statusCode === 401) {
        const text = await res.body.text().catch(() => '');
        throw this.authError(o.what, registryErrorCodes(text).join('; ') || 'unauthorized');
      }
      if ((method === 'GET' || method === 'HEAD') && [301, 302, 303, 307, 308].includes(res.statusCode)) {
        const loc = res.headers.location;
        await res.body.dump().catch(() => undefined);
        if (typeof loc !== 'string') throw this.badResponse(res.statusCode, o.what, 'redirect without a Location');
        url = new URL(loc, url).toString();
        continue;
      }
      return res;
    }
    throw this.badResponse(310, o.what, 'too many redirects');
  }

  private authError(what: string, detail: string): WarrenError {
    if (!this.auth) {
      return new WarrenError('IMAGE_AUTH_REQUIRED', `registry ${this.label} requires credentials for ${what} (${detail})`, {
        hint: `run \`warren registry login ${this.registry} -u USER --password-stdin\`, or give the job an image secret; also check the image name, registries answer "unauthorized" for images that do not exist`,
      });
    }
    return new WarrenError('IMAGE_AUTH_FAILED', `registry ${this.label} rejected the credentials for ${what} (${detail})`, {
      hint: `check the user name and password (or token) for ${this.registry} and log in again with \`warren registry login ${this.registry} -u USER --password-stdin\`; check that the user may access this repository`,
    });
  }

  private async answerChallenge(challenges: AuthChallenge[], o: SendOptions, text: string): Promise<void> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer && bearer.params.realm) {
      if (this.auth && 'token' in this.auth) {
        this.authHeaders.set(o.scope, `Bearer ${this.auth.token}`);
        return;
      }
      const realm = new URL(bearer.params.realm);
      if (bearer.params.service) realm.searchParams.set('service', bearer.params.service);
      const scope = bearer.params.scope ?? o.scope;
      if (scope) for (const sc of scope.split(' ')) realm.searchParams.append('scope', sc);
      const headers: Record<string, string> = { accept: 'application/json' };
      if (this.auth && 'username' in this.auth) {
        headers.authorization = 'Basic ' + Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64');
      }
      this.requests.token++;
      let res: Dispatcher.ResponseData;
      try {
        res = await this.raw('GET', realm.toString(), headers, undefined);
      } catch (e) {
        throw new WarrenError('IMAGE_REGISTRY_UNREACHABLE', `cannot reach the token service ${realm.origin} of registry ${this.label}: ${(e as Error).message}`, {
          hint: 'check that the registry\'s authentication service is up and reachable from this node',
          cause: e,
        });
      }
      const body = await res.body.text().catch(() => '');
      if (res.statusCode === 401 || res.statusCode === 403) throw this.authError(o.what, `token service answered ${res.statusCode}`);
      if (res.statusCode !== 200) throw this.badResponse(res.statusCode, `a token for ${o.what}`, body.slice(0, 200));
      let token: string | undefined;
      try {
        const j = JSON.parse(body) as { token?: string; access_token?: string };
        token = j.token ?? j.access_token;
      } catch {
        /* handled below */
      }
      if (!token) throw this.badResponse(res.statusCode, `a token for ${o.what}`, 'the token service sent no token');
      this.authHeaders.set(o.scope, `Bearer ${token}`);
      return;
    }
    if (basic) {
      if (!this.auth) throw this.authError(o.what, registryErrorCodes(text).join('; ') || 'unauthorized');
      if ('token' in this.auth) {
        this.basicHeader = `Bearer ${this.auth.token}`;
        return;
      }
      this.basicHeader = 'Basic ' + Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64');
      return;
    }
    throw this.authError(o.what, 'unsupported authentication scheme ' + (challenges.map((c) => c.scheme).join(', ') || '(none)'));
  }

  private badResponse(status: number, what: string, detail: string): WarrenError {
    return new WarrenError('IMAGE_REGISTRY_ERROR', `registry ${this.label} answered HTTP ${status} for ${what}${detail ? `: ${detail}` : ''}`, {
      hint: 'retry later; if it persists, check the registry\'s logs or status page',
    });
  }

  /** GET /v2/: is this a registry, and do our credentials work? */
  async ping(): Promise<void> {
    const res = await this.send('GET', '/v2/', { scope: '', what: 'the API check /v2/' });
    const text = await res.body.text().catch(() => '');
    this.requests.other++;
    if (res.statusCode !== 200) throw this.badResponse(res.statusCode, '/v2/', text.slice(0, 200));
  }

  /** Fetch a manifest or index by tag or digest; verifies the digest when asked by digest. */
  async getManifest(repository: string, reference: string, what: string): Promise<FetchedManifest> {
    this.requests.manifest++;
    const res = await this.send('GET', `/v2/${repository}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT },
      scope: `repository:${repository}:pull`,
      what,
    });
    if (res.statusCode === 404) {
      const text = await res.body.text().catch(() => '');
      const codes = registryErrorCodes(text);
      throw new WarrenError('IMAGE_NOT_FOUND', `image ${what} not found in registry ${this.label}${this.mirrorOf ? ` as ${this.registry}/${repository}` : ''}${codes.length ? ` (${codes.join('; ')})` : ''}`, {
        hint: `check the repository name and the tag or digest; list the tags with \`skopeo list-tags docker://${this.registry}/${repository}\``,
      });
    }
    if (res.statusCode === 403) {
      await res.body.dump().catch(() => undefined);
      throw this.authError(what, 'access denied (403)');
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      throw this.badResponse(res.statusCode, `the manifest of ${what}`, registryErrorCodes(text).join('; ') || text.slice(0, 200));
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body) {
      n += (c as Buffer).length;
      if (n > MAX_MANIFEST) throw new WarrenError('IMAGE_MANIFEST_INVALID', `the manifest of ${what} is larger than ${MAX_MANIFEST} bytes`, { hint: 'check the image reference; this is not a usable image manifest' });
      chunks.push(c as Buffer);
    }
    const body = Buffer.concat(chunks);
    const digest = 'sha256:' + createHash('sha256').update(body).digest('hex');
    if (reference.startsWith('sha256:') && reference !== digest) {
      throw new WarrenError('IMAGE_DIGEST_MISMATCH', `the manifest of ${what} has digest ${digest}, not the requested ${reference}`, {
        hint: 'the registry served different content than asked for: the registry or a proxy in between may be corrupt; retry, then report it to the registry operator',
      });
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new WarrenError('IMAGE_MANIFEST_INVALID', `the manifest of ${what} is not valid JSON`, { hint: 'check that the reference names an OCI or Docker v2 image' });
    }
    const ct = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const mediaType = typeof json.mediaType === 'string' ? json.mediaType : ct;
    return { digest, mediaType, body, json };
  }

  /** Download a blob to `dest`, verifying its size and sha256; throws IMAGE_DOWNLOAD_INCOMPLETE / IMAGE_DIGEST_MISMATCH. */
  async downloadBlob(repository: string, desc: Descriptor, dest: string, what: string, onBytes?: (n: number) => void): Promise<void> {
    this.requests.blob++;
    const res = await this.send('GET', `/v2/${repository}/blobs/${desc.digest}`, { scope: `repository:${repository}:pull`, what });
    if (res.statusCode === 404) {
      await res.body.dump().catch(() => undefined);
      throw new WarrenError('IMAGE_NOT_FOUND', `blob ${desc.digest} of image ${what} is missing from registry ${this.label}`, {
        hint: 'the image in the registry is incomplete; push it again or ask the registry operator',
      });
    }
    if (res.statusCode !== 200) {
      const text = await res.body.text().catch(() => '');
      throw this.badResponse(res.statusCode, `blob ${desc.digest} of ${what}`, registryErrorCodes(text).join('; ') || text.slice(0, 200));
    }
    const hash = createHash('sha256');
    let got = 0;
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        hash.update(chunk);
        got += chunk.length;
        this.bytesReceived += chunk.length;
        if (got > desc.size) {
          cb(new WarrenError('IMAGE_DIGEST_MISMATCH', `blob ${desc.digest} of image ${what} is larger than its declared ${desc.size} bytes`, {
            hint: 'the registry served different content than the manifest describes; retry, then report it to the registry operator',
          }));
          return;
        }
        onBytes?.(chunk.length);
        cb(null, chunk);
      },
    });
    const ws = createWriteStream(dest, { highWaterMark: 1 << 20 });
    try {
      await pipeline(res.body, counter, ws);
    } catch (e) {
      // The file may still be being opened: wait until the stream is closed, so that the
      // caller's clean-up cannot run before the file appears.
      if (!ws.closed) await once(ws, 'close').catch(() => undefined);
      if (e instanceof WarrenError) throw e;
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOSPC' || err.code === 'EACCES' || err.code === 'EROFS') throw e;
      throw new WarrenError('IMAGE_DOWNLOAD_INCOMPLETE', `download of blob ${desc.digest} of image ${what} broke off after ${got} of ${desc.size} bytes: ${err.message}`, {
        hint: 'the connection to the registry was interrupted; run the pull again (completed layers are kept)',
        cause: e,
      });
    }
    if (got !== desc.size) {
      throw new WarrenError('IMAGE_DOWNLOAD_INCOMPLETE', `download of blob ${desc.digest} of image ${what} ended after ${got} of ${desc.size} bytes`, {
        hint: 'the connection to the registry was interrupted; run the pull again (completed layers are kept)',
      });
    }
    const actual = 'sha256:' + hash.digest('hex');
    if (actual !== desc.digest) {
      throw new WarrenError('IMAGE_DIGEST_MISMATCH', `blob of image ${what} has digest ${actual}, expected ${desc.digest}`, {
        hint: 'the content in the registry is corrupt or was changed; push the image again, or report it to the registry operator',
      });
    }
  }

  /** Does the registry have this blob? */
  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const res = await this.send('HEAD', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull,push`, what: `${repository}@${digest}` });
    await res.body.dump().catch(() => undefined);
    return res.statusCode === 200;
  }

  /** Monolithic upload: POST /v2/<name>/blobs/uploads/, then PUT <location>?digest=. `data` is a Buffer or a file path. */
  async uploadBlob(repository: string, digest: string, data: Buffer | { path: string }): Promise<void> {
    if (await this.hasBlob(repository, digest)) return;
    const what = `${this.registry}/${repository}`;
    const scope = `repository:${repository}:pull,push`;
    const start = await this.send('POST', `/v2/${repository}/blobs/uploads/`, { scope, what, headers: { 'content-length': '0' } });
    await start.body.dump().catch(() => undefined);
    const loc = start.headers.location;
    if (start.statusCode !== 202 || typeof loc !== 'string') throw this.pushError(what, `starting an upload answered HTTP ${start.statusCode}`);
    const u = new URL(loc, this.baseUrl);
    u.searchParams.set('digest', digest);
    const size = Buffer.isBuffer(data) ? data.length : (await stat(data.path)).size;
    const body: Body = Buffer.isBuffer(data) ? data : createReadStream(data.path, { highWaterMark: 1 << 20 });
    const put = await this.send('PUT', u.toString(), {
      scope,
      what,
      body,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    });
    const text = await put.body.text().catch(() => '');
    if (put.statusCode !== 201) throw this.pushError(what, `uploading blob ${digest} answered HTTP ${put.statusCode} ${registryErrorCodes(text).join('; ')}`);
  }

  /** PUT a manifest or index under a tag or digest; returns its digest. */
  async putManifest(repository: string, reference: string, body: Buffer, mediaType: string): Promise<string> {
    const what = `${this.registry}/${repository}:${reference}`;
    const res = await this.send('PUT', `/v2/${repository}/manifests/${reference}`, {
      scope: `repository:${repository}:pull,push`,
      what,
      body,
      headers: { 'content-type': mediaType },
    });
    const text = await res.body.text().catch(() => '');
    if (res.statusCode !== 201) throw this.pushError(what, `putting the manifest answered HTTP ${res.statusCode} ${registryErrorCodes(text).join('; ')}`);
    return 'sha256:' + createHash('sha256').update(body).digest('hex');
  }

  private pushError(what: string, detail: string): WarrenError {
    return new WarrenError('IMAGE_PUSH_FAILED', `push to ${what} failed: ${detail}`, {
      hint: 'check that you may push to this repository (warren registry login) and that the registry accepts the media types',
    });
  }
}
