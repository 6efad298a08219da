// Fuzzball application templates: the catalog's values files, Go text/template with the
// slim-sprig functions (./gotemplate), rendering into a Fuzzfile with positions mapped back.
export { parseValuesText, applySets, templateData, type TemplateValue, type ValueKind } from './values.js';
export { renderTemplate, templatePosition, lineCol, executeGoTemplate, executeGoTemplateFiles, toGoValue, GoTemplateError, type Rendered, type RenderOptions, type GoTemplateOptions } from './render.js';
export type { GoValue } from './gotemplate/values.js';
export { functionNames } from './gotemplate/funcs.js';
export { readAppFile } from './files.js';
