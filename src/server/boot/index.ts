// The boot service of `warren server --provision` (issue 13), put together: Warren's HTTP
// handler (service.ts), in nginx mode behind an nginx child that serves the bulk files
// (nginx.ts), and the dnsmasq configuration kept in step with the inventory, run as a child
// with --dhcp (dnsmasq.ts). docs/provisioning.md#boot-service.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { WarrenError, type LogFn } from '../../common/index.js';
import type { TokenStore } from '../../mesh/index.js';
import { resolveNode, withProvisionDefaults, type InventoryStore, type ResolvedNode } from '../../provision/index.js';
import { DnsmasqChild, checkDnsmasqConfig, dnsmasqConfig, interfaceSubnet, prepareTftpRoot, writeIfChanged, type DhcpOptions } from './dnsmasq.js';
import { NginxChild, nginxBin } from './nginx.js';
import { BootService, DEFAULT_BOOT_TOKEN_TTL_SECONDS } from './service.js';
import { DirImageSource, imagesDir, provisionOverlays, type ImageSource, type OverlaySource } from './sources.js';

export { BootService, DEFAULT_BOOT_TOKEN_TTL_SECONDS, BOOT_TOKEN_CREATOR } from './service.js';
export type { BootServiceOptions } from './service.js';
export { DirImageSource, imagesDir } from './sources.js';
export type { BootImage, BootOverlayContext, ImageSource, OverlaySource } from './sources.js';
export { dnsmasqConfig, checkDnsmasqConfig, parseDhcpOption, prepareTftpRoot } from './dnsmasq.js';
export type { DhcpOptions } from './dnsmasq.js';
export { nginxConfig } from './nginx.js';
export { nodeScript, unknownMacScript, noImageScript } from './ipxe.js';
export { parseRange } from './files.js';

export const DEFAULT_PROVISION_PORT = 9873;

export interface ProvisionOptions {
  host: string;
  port: number;
  /** The life of a boot's join token (default 600 s). */
  tokenTtlSeconds?: number;
  /** http://ADDR:PORT the nodes reach the boot service at (default: the request's Host; for dnsmasq the listen or --dhcp address). */
  url?: string;
  /** nginx serves the bulk files: 'auto' (when nginx is installed; the default), 'on' (required), 'off'. */
  nginx?: 'auto' | 'on' | 'off';
  /** Run dnsmasq (DHCP + TFTP) on this interface. */
  dhcp?: DhcpOptions;
  /** How often the inventory is read to keep dnsmasq's configuration in step (default 5 s). */
  watchMs?: number;
  /** Where the inventory, node images and overlays come from (default: the store, DATA/provision/images, src/provision's overlays). */
  inventory?: InventoryStore;
  images?: ImageSource;
  overlays?: OverlaySource;
}

export interface BootContext {
  dataDir: string;
  tokens: TokenStore;
  /** The server's store, when it keeps the inventory. */
  store: unknown;
  server: () => { url: string; caPem: string };
  trustDomain: string;
  log: LogFn;
}

export interface RunningBoot {
  /** http://HOST:PORT where the boot service listens (nginx's port in nginx mode). */
  url: string;
  port: number;
  nginx: boolean;
  /** The pids of the children (nginx, dnsmasq) while they run. */
  children(): number[];
  /** DATA/provision/dnsmasq.conf (written when the boot URL is known). */
  dnsmasqConf: string;
  /** Write the dnsmasq configuration now from the inventory (and restart dnsmasq when it changed). */
  syncDhcp(): Promise<boolean>;
  close(): Promise<void>;
}

const isInventory = (s: unknown): s is InventoryStore => typeof (s as InventoryStore | null)?.inventoryNodeByMac === 'function' && typeof (s as InventoryStore).patchBootStatus === 'function';

async function listen(server: Server, host: string, port: number, what: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((e: NodeJS.ErrnoException) => {
    throw new WarrenError('SERVER_LISTEN_FAILED', `cannot listen on ${host}:${port} for ${what}: ${e.code === 'EADDRINUSE' ? 'the address is in use' : e.code === 'EACCES' ? 'permission denied (ports below 1024 need root)' : e.code === 'EADDRNOTAVAIL' ? 'this machine has no such address' : e.message}`, {
      hint: 'choose an address of this machine and a free port: --provision ADDRESS:PORT',
      cause: e,
    });
  });
  return (server.address() as { port: number }).port;
}

export async function startBootService(p: ProvisionOptions, c: BootContext): Promise<RunningBoot> {
  const inventory = p.inventory ?? (isInventory(c.store) ? c.store : null);
  if (!inventory) throw new WarrenError('WARREN_INTERNAL', 'this build of Warren\'s store keeps no provisioning inventory', { hint: 'build Warren from a tree with the inventory of issue 13' });
  const images = p.images ?? new DirImageSource(c.dataDir);
  const overlays = p.overlays ?? provisionOverlays(c.dataDir);
  const useNginx = p.nginx === 'on' || ((p.nginx ?? 'auto') === 'auto' && nginxBin() !== null);
  const secret = useNginx ? randomBytes(24).toString('hex') : undefined;
  const service = new BootService({ dataDir: c.dataDir, inventory, images, overlays, tokens: c.tokens, tokenTtlSeconds: p.tokenTtlSeconds ?? DEFAULT_BOOT_TOKEN_TTL_SECONDS, server: c.server, trustDomain: c.trustDomain, ...(p.url ? { bootUrl: p.url } : {}), ...(secret ? { proxySecret: secret } : {}), log: c.log });
  const http = createServer((req, res) => void service.handle(req, res));
  http.keepAliveTimeout = 30_000;
  const closers: (() => Promise<void>)[] = [() => new Promise<void>((r) => {
    http.closeAllConnections();
    http.close(() => r());
  })];
  const close = async (): Promise<void> => {
    for (const f of closers.reverse()) await f().catch(() => {});
  };
  try {
    let port: number;
    let nginx: NginxChild | null = null;
    if (useNginx) {
      const back = await listen(http, '127.0.0.1', 0, "the boot service's handler behind nginx");
      if (p.port === 0) throw new WarrenError('CLI_BAD_OPTION', '--provision needs a port number in nginx mode (nginx cannot pick one)', { hint: `give --provision ADDRESS:${DEFAULT_PROVISION_PORT}` });
      nginx = new NginxChild(join(c.dataDir, 'provision', 'nginx'), c.log);
      const n = nginx;
      closers.push(() => n.stop());
      await nginx.start({ listen: { host: p.host, port: p.port }, backend: { host: '127.0.0.1', port: back }, imagesDir: imagesDir(c.dataDir), secret: secret! });
      port = p.port;
    } else {
      port = await listen(http, p.host, p.port, 'the boot service');
    }
    const shown = p.host === '0.0.0.0' || p.host === '::' ? null : p.host.includes(':') ? `[${p.host}]` : p.host;
    const url = `http://${shown ?? '0.0.0.0'}:${port}`;

    // dnsmasq: the configuration from the inventory, the child with --dhcp.
    const provDir = join(c.dataDir, 'provision');
    const conf = join(provDir, 'dnsmasq.conf');
    const tftpRoot = join(provDir, 'tftp');
    const tftpFiles = prepareTftpRoot(tftpRoot);
    const subnet = p.dhcp ? interfaceSubnet(p.dhcp.iface) : null;
    const bootUrl = p.url ?? (shown ? `http://${shown}:${port}` : subnet ? `http://${subnet.address}:${port}` : null);
    let dns: DnsmasqChild | null = null;
    const resolved = async (): Promise<ResolvedNode[]> => {
      const [profiles, nodes] = await Promise.all([inventory.listProfiles(), inventory.listInventoryNodes()]);
      const out: ResolvedNode[] = [];
      for (const n of nodes) {
        try {
          out.push(withProvisionDefaults(resolveNode(n, profiles)));
        } catch {
          /* logged by the boot service when the node asks */
        }
      }
      return out;
    };
    const syncDhcp = async (): Promise<boolean> => {
      if (!bootUrl) return false;
      const text = dnsmasqConfig({ nodes: await resolved(), bootUrl, tftpRoot, tftpFiles, user: userInfo().username, ...(p.dhcp && subnet ? { dhcp: { ...p.dhcp, subnet } } : {}) });
      if (!writeIfChanged(conf, text)) return false;
      if (dns) {
        await checkDnsmasqConfig(conf);
        await dns.restart();
        c.log('info', `boot: the inventory changed: dnsmasq restarted with ${conf}`);
      }
      return true;
    };
    if (bootUrl) {
      await syncDhcp();
      if (p.dhcp) {
        await checkDnsmasqConfig(conf);
        dns = new DnsmasqChild(conf, c.log);
        const d = dns;
        closers.push(() => d.stop());
        await d.start();
        c.log('info', `boot: dnsmasq serves DHCP and TFTP on ${p.dhcp.iface} (${conf})`);
      } else {
        c.log('info', `boot: no --dhcp: point the network's DHCP server at the boot service: PXE firmware gets next-server = this machine, filename undionly.kpxe (BIOS) or ipxe.efi (UEFI) from a TFTP server with ${tftpRoot}; iPXE (DHCP option 175, user-class "iPXE") gets filename ${bootUrl}/provision/ipxe?mac=\${net0/mac} (or run dnsmasq with ${conf}: --dhcp IFACE does)`);
      }
    } else {
      c.log('warn', `boot: the boot service listens on every address, so the URL nodes reach it at is not known: no dnsmasq configuration is written (give --provision-url http://ADDRESS:${port}, or --dhcp IFACE)`);
    }
    let syncing = false;
    const watch = setInterval(() => {
      if (syncing) return;
      syncing = true;
      syncDhcp()
        .catch((e: unknown) => c.log('warn', `boot: cannot update the dnsmasq configuration: ${(e as Error).message}`))
        .finally(() => (syncing = false));
    }, p.watchMs ?? 5000);
    watch.unref();
    closers.push(async () => clearInterval(watch));
    c.log('info', `boot service on ${url}${nginx ? ' (nginx serves the node images)' : ''}: iPXE scripts at ${bootUrl ?? url}/provision/ipxe?mac=MAC`);
    const children = (): number[] => [nginx?.pid, dns?.pid].filter((p): p is number => p !== undefined);
    return { url, port, nginx: nginx !== null, children, dnsmasqConf: conf, syncDhcp, close };
  } catch (e) {
    await close();
    throw e;
  }
}
