// Installing Warren as a service: systemd units for `warren server` and `warren agent`.
export { systemdUnit, execWord, UNIT_NAMES, DEFAULT_DATA, DEFAULT_ENV_FILE, DEFAULT_SERVER_USER, OPTIONS_VARIABLE } from './systemd.js';
export type { Unit, UnitKind, UnitOptions, UnitProgram } from './systemd.js';
export { thisProgram, shebangNodeArgs, unreadableByOthers, writeUnit } from './write.js';
