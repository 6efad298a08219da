// Ad-hoc containers and instances on this machine (`warren exec|shell|run IMAGE`, `warren
// instance`): a public entry of its own, so the CLI loads only this (not the local agent, the
// daemon or the store) and an ad-hoc container starts fast.
export { runAdhocContainer, decryptionOf, prepareAdhocImage, looksLikeImage, parseAdhocImage } from './adhoc.js';
export type { AdhocRunOptions, AdhocImageArg } from './adhoc.js';
export { startInstance, listInstances, stopInstances, execInInstance } from './instance.js';
export type { InstanceRecord, StartInstanceOptions, ExecInInstanceOptions } from './instance.js';
