// The workflow format: parsing, validation and import into the normalized model (types.ts).
export * from './types.js';
export { parseWorkflowText, loadWorkflowFile, loadWorkflowText, readWorkflowText } from './load.js';
export { formatDiagnostic } from './diagnostics.js';
export { fromWfFormat } from './wfformat.js';
export { workflowJsonSchema } from './schema.js';
export type { ReadOptions } from './fuzzfile.js';
export { BUILTIN_STORAGE_CLASSES, STORAGE_CLASSES_FILE, parseStorageClasses, readStorageClasses, type StorageClass } from './storage.js';
export { PROBE_DEFAULTS } from './service.js';
export { workflowAnnotations, type AnnotationEntry } from './annotations.js';
export { upgradeFuzzfile, type UpgradeResult } from './upgrade.js';
