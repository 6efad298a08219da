// Execution of work on a node: the process runtime here; the container runtime in ./container.
export { createProcessRuntime } from './process.js';
export type { ProcessRuntimeOptions } from './process.js';
export { jobIsolation, stopRecordedAttempt } from './jobcgroup.js';
export type { JobIsolation, JobIsolationMode } from './jobcgroup.js';
export { closeSpawner } from './spawner.js';
export type { BindMount, ContainerOptions, ExitInfo, ExitReason, LaunchRequest, RunningTask, Runtime } from './types.js';
export { sanitizeHostname } from './container/spec.js';
// One step of an image build (%post, %appinstall, %test) inside the tree being built (src/build).
export { runBuildStep, lastLines, lexists, resolveInRoot, pathInTree, BUILD_CAPABILITIES } from './container/buildstep.js';
export type { BuildStepOptions, BuildStepResult } from './container/buildstep.js';
