// Sites that exist already (issue 14): Slurm clusters (pilot and direct modes) and cloud regions
// (the local driver, AWS EC2), behind one driver contract; elastic capacity from the plan.
export type { InstanceState, InstanceRequest, InstanceView, SiteDriver } from './driver.js';
export * from './slurm/index.js';
