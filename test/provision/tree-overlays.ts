// An OverlaySource for the boot service's tests and bench: each overlay is a directory tree
// under DIR/<name>/, packed for real (packCpioGz, root-owned), with the node's name and its join
// token written in as files, so a test can unpack the archive and see what the node got. (The
// template engine is the overlays part of issue 13; this packs without templates.)
import { mkdtempSync, rmSync, writeFileSync, cpSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WarrenError } from '../../src/common/index.js';
import { packCpioGz } from '../../src/provision/index.js';
import type { BootOverlayContext, OverlaySource } from '../../src/server/boot/index.js';

export class TreeOverlays implements OverlaySource {
  readonly builds: { overlays: string[]; node: string; token: string | null }[] = [];
  constructor(private readonly dir: string) {}

  async build(overlays: string[], ctx: BootOverlayContext, out: string): Promise<{ sha256: string; size: number }> {
    this.builds.push({ overlays: [...overlays], node: ctx.node.name, token: ctx.joinToken });
    const stage = mkdtempSync(join(tmpdir(), 'warren-ovl-'));
    try {
      for (const o of overlays) {
        const src = join(this.dir, o);
        if (!existsSync(src)) throw new WarrenError('PROVISION_BOOT_NOT_FOUND', `overlay ${o} does not exist`);
        cpSync(src, stage, { recursive: true });
      }
      mkdirSync(join(stage, 'etc', 'warren'), { recursive: true });
      writeFileSync(join(stage, 'etc', 'hostname'), `${ctx.node.name}\n`);
      writeFileSync(join(stage, 'etc', 'warren', 'agent.env'), `WARREN_SERVER=${ctx.server.url}\nWARREN_NODE_NAME=${ctx.node.name}\nWARREN_JOIN_TOKEN=${ctx.joinToken ?? ''}\n`);
      return await packCpioGz(stage, out, { rootOwned: true, level: 1 });
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  }
}
