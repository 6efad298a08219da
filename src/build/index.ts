// Public API of the build subsystem: images from Apptainer definition files
// (`warren image build OUT.sif RECIPE.def`): see docs/build.md.
export { parseDefinition, parseBuildArgs, parseBuildArgFile, looksLikeDefinition, SUPPORTED_BOOTSTRAPS, REFUSED_BOOTSTRAPS, STAGE_SECTIONS, APP_SECTIONS } from './deffile.js';
export type { Recipe, Stage, App, ScriptSection, FilesSection, FileCopy, Position, Bootstrap, ParseOptions } from './deffile.js';
export { buildFromDefinition, loadRecipe, resolveInRoot, expandGlob } from './builder.js';
export type { DefinitionBuildOptions, DefinitionBuildResult } from './builder.js';
export { debianMirror } from './bootstrap.js';
