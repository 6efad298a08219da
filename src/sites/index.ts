// Sites that exist already (issue 14): Slurm clusters (pilot and direct modes) and cloud regions
// (the local driver, AWS EC2), behind one driver contract; elastic capacity from the plan.
export type { InstanceState, InstanceRequest, InstanceView, SiteDriver } from './driver.js';
export { LocalDriver, localUnavailable } from './local.js';
export type { LocalDriverOptions, LocalInstanceType } from './local.js';
export { ElasticController } from './elastic.js';
export type { ElasticCluster, ElasticSiteConfig, ElasticEvent, ElasticOptions, ElasticInstanceView } from './elastic.js';
export { registerDriver, createDriver, driverKinds } from './registry.js';
export type { DriverFactory, DriverContext } from './registry.js';
// The EC2 driver is not re-exported here (it loads the AWS SDK): import it through createDriver('ec2', ...)
// or from './ec2.js' where the SDK is wanted.
export * from './slurm/index.js';
