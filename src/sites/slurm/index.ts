// Slurm sites (issue 14): settings, the checks made before anything is submitted, pilot mode.
export { slurmSettings, slurmSettingsOfSite, validateSlurmSettings, slurmTime, pilotTokenTtlSec, SLURM_DEFAULTS, type SlurmSiteSettings, type SlurmMode } from './settings.js';
export { SlurmCommands, shellQuote, type SlurmResult, type SlurmCommand } from './commands.js';
export { checkSlurmSite, pilotJobOptions } from './check.js';
export { SlurmPilotDriver, pilotState, PILOT_PREFIX, type SlurmPilotOptions } from './pilot.js';
export { SlurmDirectAgent, type SlurmDirectOptions } from './direct.js';
