// The workflow state machine: pure, deterministic, events in and actions out.
export { Engine, EGRESS_KEY, ingressKey, unitKey } from './engine.js';
export { TERMINAL } from './types.js';
export type { NodeCounts } from './engine.js';
export type { EngineAction, EngineEvent, EngineOptions, UnitKind, UnitSnapshot, UnitState, WorkflowStatus } from './types.js';
export { explainWaiting } from './explain.js';
export type { NodeCapacity } from './explain.js';
