// Sites that exist already (issue 14): Slurm clusters (pilot and direct modes) and cloud regions
// (the local driver, AWS EC2), behind one driver contract; elastic capacity from the plan.
export type { InstanceState, InstanceRequest, InstanceView, SiteDriver } from './driver.js';
export { LocalDriver, localUnavailable } from './local.js';
export type { LocalDriverOptions, LocalInstanceType } from './local.js';
export { ElasticController } from './elastic.js';
export type { ElasticCluster, ElasticSiteConfig, ElasticEvent, ElasticOptions, ElasticInstanceView } from './elastic.js';
