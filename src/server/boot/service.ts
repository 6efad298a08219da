// The boot service of `warren server --provision` (issue 13): plain HTTP, since PXE/iPXE
// firmware cannot check the cluster CA.
//
//   GET /provision/ipxe?mac=MAC                        the node's iPXE script (a message for an unknown MAC)
//   GET /provision/images/<hex>/vmlinuz                public, immutable: ranges, ETag, 304
//   GET /provision/images/<hex>/rootfs.cpio.gz         (served by nginx in nginx mode)
//   GET /provision/overlays/system.cpio.gz?mac=MAC     per boot: mints the node's join token; only to that node
//   GET /provision/overlays/runtime.cpio.gz?mac=MAC    only to that node
//
// "That node": the request's source address is the inventory address of the interface with
// that MAC. In nginx mode the client's address comes from nginx in a header, believed only
// from a loopback peer that also sends the secret nginx was configured with.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { WarrenError, toWarrenError, type LogFn } from '../../common/index.js';
import { createJoinToken, type TokenStore } from '../../mesh/index.js';
import { normalizeMac, resolveNode, withProvisionDefaults, type BootStatus, type InventoryStore, type NetDevice, type ResolvedNode } from '../../provision/index.js';
import { serveFile } from './files.js';
import { messageScript, noImageScript, nodeScript, unknownMacScript } from './ipxe.js';
import type { ImageSource, OverlaySource } from './sources.js';

/** The default life of a boot's join token (`--boot-token-ttl`). */
export const DEFAULT_BOOT_TOKEN_TTL_SECONDS = 600;
/** Who a boot token is made by, in `warren token list`. */
export const BOOT_TOKEN_CREATOR = 'boot-service';
/** The headers nginx sets on what it passes to Warren (nginx mode). */
export const PROXY_CLIENT_HEADER = 'x-warren-client';
export const PROXY_SECRET_HEADER = 'x-warren-proxy-secret';

export interface BootServiceOptions {
  dataDir: string;
  inventory: InventoryStore;
  images: ImageSource;
  overlays: OverlaySource;
  /** Where join tokens are kept (the store's). */
  tokens: TokenStore;
  tokenTtlSeconds?: number;
  /** The https URL agents join at, and the cluster's CA (the bundle agents trust). */
  server: () => { url: string; caPem: string };
  trustDomain: string;
  /** The boot service's base URL for the scripts (default: http:// + the request's Host). */
  bootUrl?: string;
  /** nginx mode: the secret nginx sends with the client's address. */
  proxySecret?: string;
  log: LogFn;
  clock?: () => number;
}

interface Snapshot {
  at: number;
  nodes: ResolvedNode[];
  byIp: Map<string, string>;
}

const plainIp = (a: string | undefined): string => (a ?? '').replace(/^::ffff:/, '');
const ipOf = (d: NetDevice | undefined | null): string | null => (d?.ip ? d.ip.split('/')[0]! : null);
const isLoopback = (a: string): boolean => a === '::1' || a.startsWith('127.');

export class BootService {
  private readonly ttl: number;
  private readonly clock: () => number;
  private snap: Snapshot | null = null;
  private readonly renderedDir: string;

  constructor(private readonly o: BootServiceOptions) {
    this.ttl = o.tokenTtlSeconds ?? DEFAULT_BOOT_TOKEN_TTL_SECONDS;
    this.clock = o.clock ?? Date.now;
    this.renderedDir = join(o.dataDir, 'provision', 'rendered');
    mkdirSync(this.renderedDir, { recursive: true, mode: 0o700 });
    // A server that died while sending an overlay may have left its file (with a token): gone now.
    for (const node of readdirSync(this.renderedDir)) {
      const dir = join(this.renderedDir, node);
      try {
        for (const f of readdirSync(dir)) if (/^(system|runtime)\.[0-9a-f]{12}\.cpio\.gz(\.partial)?$/.test(f)) rmSync(join(dir, f), { force: true });
      } catch {
        /* not a directory */
      }
    }
  }

  /** The address the request came from (nginx's client in nginx mode). */
  clientAddress(req: IncomingMessage): string {
    const peer = plainIp(req.socket.remoteAddress);
    const secret = this.o.proxySecret;
    const sent = req.headers[PROXY_SECRET_HEADER];
    if (secret && isLoopback(peer) && typeof sent === 'string' && sent.length === secret.length && timingSafeEqual(Buffer.from(sent), Buffer.from(secret))) {
      const c = req.headers[PROXY_CLIENT_HEADER];
      if (typeof c === 'string' && c) return plainIp(c);
    }
    return peer;
  }

  /** Every node resolved, and who has which address (kept 2 s: image requests come in bursts). */
  private async snapshot(fresh = false): Promise<Snapshot> {
    const now = this.clock();
    if (!fresh && this.snap && now - this.snap.at < 2000) return this.snap;
    const [profiles, inv] = await Promise.all([this.o.inventory.listProfiles(), this.o.inventory.listInventoryNodes()]);
    const nodes: ResolvedNode[] = [];
    const byIp = new Map<string, string>();
    for (const n of inv) {
      try {
        const r = withProvisionDefaults(resolveNode(n, profiles));
        nodes.push(r);
        for (const d of Object.values(r.network)) {
          const ip = ipOf(d);
          if (ip) byIp.set(ip, r.name);
        }
      } catch (e) {
        this.o.log('warn', `boot: node ${n.name} cannot be resolved: ${(e as Error).message}`, { node: n.name });
      }
    }
    this.snap = { at: now, nodes, byIp };
    return this.snap;
  }

  /** The node with an interface of this MAC, resolved, and that interface. */
  private async nodeByMac(mac: string): Promise<{ node: ResolvedNode; dev: NetDevice } | undefined> {
    const inv = await this.o.inventory.inventoryNodeByMac(mac);
    if (!inv) return undefined;
    // The overlays and kernel arguments a node and its profiles leave unset are the defaults
    // (warren-system, warren-runtime, console=ttyS0), as `warren overlay build` renders them.
    const node = withProvisionDefaults(resolveNode(inv, await this.o.inventory.listProfiles()));
    const dev = Object.values(node.network).find((d) => d.mac === mac) ?? node.primary ?? {};
    return { node, dev };
  }

  /** Record the request in the node's boot status (a failed write is logged, never fails the request). */
  private patch(node: string, path: string, from: string, extra: Partial<BootStatus> = {}): Promise<void> {
    const p: Partial<BootStatus> = { lastRequestAt: this.clock(), lastRequest: path, from, ...extra };
    return this.o.inventory.patchBootStatus(node, p).catch((e: unknown) => this.o.log('warn', `boot: cannot write the boot status of node ${node}: ${(e as Error).message}`, { node }));
  }

  /** Answer one request (never throws: errors become their HTTP status with the wire error). */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://boot');
    const from = this.clientAddress(req);
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        throw new WarrenError('PROVISION_BOOT_BAD_REQUEST', `${req.method} ${url.pathname}: the boot service answers GET and HEAD only`, { hint: 'fetch the URL with GET' });
      }
      const path = url.pathname;
      if (path === '/provision/ipxe') return await this.ipxe(req, res, url, from);
      const img = /^\/provision\/images\/([0-9a-f]{64})\/(vmlinuz|rootfs\.cpio\.gz)$/.exec(path);
      if (img) return await this.image(req, res, img[1]!, img[2] as 'vmlinuz' | 'rootfs.cpio.gz', from);
      const ov = /^\/provision\/overlays\/(system|runtime)\.cpio\.gz$/.exec(path);
      if (ov) return await this.overlay(req, res, url, ov[1] as 'system' | 'runtime', from);
      throw new WarrenError('PROVISION_BOOT_NOT_FOUND', `no boot file at ${path}`, { hint: 'the boot service serves /provision/ipxe?mac=MAC, /provision/images/DIGEST/vmlinuz|rootfs.cpio.gz and /provision/overlays/system|runtime.cpio.gz?mac=MAC' });
    } catch (e) {
      const err = toWarrenError(e);
      if (err.httpStatus >= 500) this.o.log('error', `boot: ${req.method} ${url.pathname} from ${from}: ${err.message}`, { code: err.code, from });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = JSON.stringify({ error: err.toWire() });
      res.statusCode = err.httpStatus;
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.end(req.method === 'HEAD' ? undefined : body);
    }
  }

  private macOf(url: URL): string {
    const raw = url.searchParams.get('mac');
    if (!raw) throw new WarrenError('PROVISION_BOOT_BAD_REQUEST', `${url.pathname} needs ?mac=MAC (iPXE: ?mac=\${net0/mac})`, { hint: 'boot the machine with the script of /provision/ipxe?mac=${net0/mac}' });
    return normalizeMac(raw);
  }

  private sendScript(req: IncomingMessage, res: ServerResponse, text: string): void {
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', Buffer.byteLength(text));
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  private bootUrl(req: IncomingMessage): string {
    if (this.o.bootUrl) return this.o.bootUrl;
    const host = req.headers.host;
    if (!host || !/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new WarrenError('PROVISION_BOOT_BAD_REQUEST', 'the request has no usable Host header to build the boot URLs from', { hint: 'start the server with --provision-url http://ADDRESS:PORT' });
    return `http://${host}`;
  }

  private async ipxe(req: IncomingMessage, res: ServerResponse, url: URL, from: string): Promise<void> {
    const mac = this.macOf(url);
    let found: Awaited<ReturnType<BootService['nodeByMac']>>;
    try {
      found = await this.nodeByMac(mac);
    } catch (e) {
      // The node is there but cannot be resolved (a profile it names is gone): say so on its console.
      const err = toWarrenError(e);
      if (err.httpStatus >= 500) throw err;
      this.o.log('warn', `boot: the machine with MAC ${mac} (from ${from}) cannot boot: ${err.message}`, { mac, from, code: err.code });
      return this.sendScript(req, res, messageScript([`Warren: this machine (MAC ${mac}) cannot boot: ${err.message}`, ...(err.hint ? [`Fix it on the server: ${err.hint}`] : [])]));
    }
    if (!found) {
      this.o.log('warn', `boot: a machine with MAC ${mac} (from ${from}) asked for its boot script and is not in the inventory: \`warren node add NAME --mac ${mac} --ip ADDRESS\``, { mac, from });
      return this.sendScript(req, res, unknownMacScript(mac));
    }
    const { node } = found;
    const image = node.image ? await this.o.images.find(node.image) : undefined;
    if (!image) {
      this.o.log('warn', `boot: node ${node.name} (MAC ${mac}, from ${from}) cannot boot: ${node.image ? `no node image of ${node.image} was built (\`warren image node-build ${node.image}\`)` : 'it has no image'}`, { node: node.name, mac, from });
      await this.patch(node.name, url.pathname, from);
      return this.sendScript(req, res, noImageScript(node.name, node.image));
    }
    const script = nodeScript({ node: node.name, bootUrl: this.bootUrl(req), imageDigest: image.digest, mac, kernelArgs: node.kernelArgs });
    this.o.log('info', `boot: node ${node.name} (MAC ${mac}, from ${from}) boots node image ${image.digest}`, { node: node.name, mac, from, image: image.digest });
    await this.patch(node.name, url.pathname, from, { bootedAt: this.clock(), imageDigest: image.digest });
    this.sendScript(req, res, script);
  }

  private async image(req: IncomingMessage, res: ServerResponse, hex: string, file: 'vmlinuz' | 'rootfs.cpio.gz', from: string): Promise<void> {
    const img = await this.o.images.byHex(hex);
    if (!img) throw new WarrenError('PROVISION_BOOT_NOT_FOUND', `there is no node image sha256:${hex} on this server`, { hint: 'the node image was removed or rebuilt: boot the node again for a fresh script (warren image node-build IMAGE)' });
    const kernel = file === 'vmlinuz';
    const node = (await this.snapshot()).byIp.get(from);
    // Not waited for: a bulk file's requests come in bursts of ranges.
    if (node) void this.patch(node, `/provision/images/${hex}/${file}`, from);
    await serveFile(req, res, kernel ? img.kernelPath : img.rootfsPath, { etag: `"sha256-${kernel ? img.kernelSha256 : img.rootfsSha256}"` });
  }

  private async overlay(req: IncomingMessage, res: ServerResponse, url: URL, kind: 'system' | 'runtime', from: string): Promise<void> {
    const mac = this.macOf(url);
    const found = await this.nodeByMac(mac);
    if (!found) {
      this.o.log('warn', `boot: the ${kind} overlay was asked for MAC ${mac} (from ${from}), which is not in the inventory`, { mac, from });
      throw new WarrenError('PROVISION_BOOT_NOT_FOUND', `MAC ${mac} is not in the inventory`, { hint: `add the node: warren node add NAME --mac ${mac} --ip ADDRESS` });
    }
    const { node, dev } = found;
    const ip = ipOf(dev) ?? ipOf(node.primary);
    if (!ip || ip !== from) {
      this.o.log('warn', `boot: refused the ${kind} overlay of node ${node.name} to ${from}: ${ip ? `the node's address is ${ip}` : 'the node has no address in the inventory'}`, { node: node.name, mac, from });
      throw new WarrenError('PROVISION_BOOT_FORBIDDEN', `the ${kind} overlay of node ${node.name} goes only to the node's own address${ip ? '' : ' (it has none in the inventory)'}, not to ${from}`, {
        hint: ip ? `boot the node with its inventory address (${ip}: the DHCP server must give it), or correct it: warren node set ${node.name} --ip ADDRESS` : `give the node its address: warren node set ${node.name} --ip ADDRESS`,
      });
    }
    const dir = join(this.renderedDir, node.name);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const server = this.o.server();
    const base = { node, nodes: (await this.snapshot(true)).nodes, server: { url: server.url, caPem: server.caPem, bootUrl: this.bootUrl(req) }, cluster: { trustDomain: this.o.trustDomain } };
    if (kind === 'runtime') {
      // One file per request (two fetches of one node at once never write one file), gone once open.
      const out = join(dir, `runtime.${randomBytes(6).toString('hex')}.cpio.gz`);
      try {
        await this.o.overlays.build(node.runtimeOverlays, { ...base, joinToken: null }, out);
        await this.patch(node.name, url.pathname, from, { runtimeOverlayAt: this.clock() });
        await serveFile(req, res, out, { cacheControl: 'no-store', removeWhenOpen: true });
      } finally {
        await fsp.rm(out, { force: true });
        await fsp.rm(`${out}.partial`, { force: true });
      }
      return;
    }
    if (req.method === 'HEAD') {
      // A HEAD mints nothing: say that the overlay is there, without a token.
      res.statusCode = 200;
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('Content-Type', 'application/octet-stream');
      res.end();
      return;
    }
    // One boot, one token: the tokens of this node's earlier boots are revoked first.
    const revoked = await this.revokeBootTokens(node.name);
    const { token, record } = await createJoinToken(this.o.tokens, { ttlSeconds: this.ttl, uses: 1, createdBy: BOOT_TOKEN_CREATOR, node: node.name, now: this.clock() });
    const out = join(dir, `system.${randomBytes(6).toString('hex')}.cpio.gz`);
    try {
      await this.o.overlays.build(node.systemOverlays, { ...base, joinToken: token }, out);
      await fsp.chmod(out, 0o600);
      this.o.log('info', `boot: node ${node.name} (from ${from}) gets its system overlay with join token ${record.id} (one use, bound to ${node.name}, ${this.ttl} s)${revoked ? `; ${revoked} earlier boot token(s) revoked` : ''}`, { node: node.name, from, token: record.id });
      await this.patch(node.name, url.pathname, from, { systemOverlayAt: this.clock() });
      await serveFile(req, res, out, { cacheControl: 'no-store', removeWhenOpen: true });
    } catch (e) {
      await this.o.tokens.delete(record.hash).catch(() => false);
      throw e;
    } finally {
      await fsp.rm(out, { force: true });
      await fsp.rm(`${out}.partial`, { force: true });
    }
  }

  /** Delete the boot tokens minted for this node before (how many). */
  private async revokeBootTokens(node: string): Promise<number> {
    let n = 0;
    for (const t of await this.o.tokens.list()) {
      if (t.node === node && t.createdBy === BOOT_TOKEN_CREATOR && (await this.o.tokens.delete(t.hash))) n++;
    }
    return n;
  }
}
