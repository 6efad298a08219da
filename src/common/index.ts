// Shared building blocks used by every subsystem: typed errors and unit parsing.
export { WarrenError, EXIT, isWarrenError, toWarrenError } from './errors.js';
export type { WarrenErrorOptions } from './errors.js';
export { parseSize, parseDuration, parseBandwidth, formatBytes, formatDuration } from './units.js';
export { warrenHome, ensureWarrenHome } from './paths.js';
export { editDistance, didYouMean } from './suggest.js';
export { pidAlive } from './process.js';
