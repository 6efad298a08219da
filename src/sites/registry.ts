// The site driver registry: one factory per site kind. Built in: `local` (src/sites/local.ts)
// and `ec2` (src/sites/ec2.ts, loaded only when used: the AWS SDK is large), and `slurm` (a Slurm
// site in pilot mode, src/sites/slurm). The factory gets the site's settings as the platform gives
// them and returns a driver; `check()` is the caller's next step (before anything is submitted).
import { WarrenError } from '../common/index.js';
import type { SiteDriver } from './driver.js';

export interface DriverContext {
  /** A directory of the server's where the driver may keep files of its instances. */
  dataDir: string;
}

export type DriverFactory = (site: string, settings: Readonly<Record<string, unknown>>, ctx: DriverContext) => Promise<SiteDriver>;

const factories = new Map<string, DriverFactory>();

/** Registers the factory of a site kind (a kind registered twice is a programming error). */
export function registerDriver(kind: string, factory: DriverFactory): void {
  if (factories.has(kind)) throw new Error(`site driver kind "${kind}" is registered twice`);
  factories.set(kind, factory);
}

export function driverKinds(): string[] {
  return [...factories.keys()].sort();
}

/** The driver of a site; SITE_UNKNOWN_KIND (exit 2) names the site and the kinds there are. */
export async function createDriver(kind: string, site: string, settings: Readonly<Record<string, unknown>>, ctx: DriverContext): Promise<SiteDriver> {
  const f = factories.get(kind);
  if (!f) throw new WarrenError('SITE_UNKNOWN_KIND', `site "${site}": no driver of kind "${kind}" (there are: ${driverKinds().join(', ')})`, { hint: `give the site one of the kinds ${driverKinds().join(', ')}` });
  return f(site, settings, ctx);
}

registerDriver('local', async (site, s, ctx) => {
  const { LocalDriver } = await import('./local.js');
  return LocalDriver.create({ ...(s as object), site, dataDir: typeof s.dataDir === 'string' ? s.dataDir : `${ctx.dataDir}/${site}` } as never);
});

registerDriver('ec2', async (site, s) => {
  const { Ec2Driver } = await import('./ec2.js');
  return new Ec2Driver({ ...(s as object), site } as never);
});

// A Slurm site in pilot mode: each instance is a pilot job (sbatch) running `warren agent`.
registerDriver('slurm', async (site, s) => {
  const { SlurmPilotDriver, slurmSettings } = await import('./slurm/index.js');
  return new SlurmPilotDriver(slurmSettings({ ...(s as object), name: site, mode: 'pilot' } as never));
});
