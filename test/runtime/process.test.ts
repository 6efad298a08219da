import { describe } from 'node:test';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { runtimeContract } from './contract.js';

describe('process runtime (warren-spawn launcher)', () => {
  runtimeContract({ name: 'process/spawner', runtime: () => createProcessRuntime({ launcher: 'spawner' }), prepare: (r) => r, sh: '/bin/sh' });
});

describe('process runtime (child_process launcher)', () => {
  runtimeContract({ name: 'process/node', runtime: () => createProcessRuntime({ launcher: 'node' }), prepare: (r) => r, sh: '/bin/sh' });
});

describe('process runtime (process-group fallback, cgroups not used)', () => {
  runtimeContract({ name: 'process/process-group', runtime: () => createProcessRuntime({ isolation: 'process-group' }), prepare: (r) => r, sh: '/bin/sh' });
});

describe('process runtime (every job held until a resolved beforeExec)', () => {
  runtimeContract({ name: 'process/held', runtime: () => createProcessRuntime(), prepare: (r) => ({ ...r, beforeExec: async () => {} }), sh: '/bin/sh' });
});
