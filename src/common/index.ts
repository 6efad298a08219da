// Shared building blocks used by every subsystem: typed errors and unit parsing.
export { WarrenError, EXIT, isWarrenError, toWarrenError } from './errors.js';
export type { WarrenErrorOptions, WireError } from './errors.js';
export { ERROR_CODES, isErrorCode } from './codes.js';
export type { ErrorCode } from './codes.js';
export { parseSize, parseDuration, parseBandwidth, formatBytes, formatDuration } from './units.js';
export { warrenHome, ensureWarrenHome } from './paths.js';
export { editDistance, didYouMean } from './suggest.js';
export { pidAlive } from './process.js';
export { removeTreeSync } from './fs.js';
export { createLogger, toLogger, attemptFields, jsonLine, textLine, LOG_LEVELS, LOG_FORMATS } from './log.js';
export type { Logger, LoggerOptions, LogFn, LogFields, LogLevel, LogFormat } from './log.js';
export { requestUpgrade, acceptUpgrade, refuseUpgrade, joinStreams, TUNNEL_PROTOCOL, TUNNEL_ERROR_HEADER } from './upgrade.js';
