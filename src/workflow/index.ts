// The workflow format: parsing, validation and import into the normalized model (types.ts).
export * from './types.js';
export { parseWorkflowText, loadWorkflowFile, loadWorkflowText, readWorkflowText } from './load.js';
export { formatDiagnostic } from './diagnostics.js';
export { fromWfFormat } from './wfformat.js';
export { workflowJsonSchema } from './schema.js';
export { upgradeFuzzfile, type UpgradeResult } from './upgrade.js';
