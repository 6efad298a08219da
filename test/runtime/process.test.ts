import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { LocalAgent } from '../../src/agent/index.js';
import { runtimeContract } from './contract.js';
import { tempDir } from '../helpers.js';

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

describe('local agent', () => {
  test('never runs more cores at once than it has', { timeout: 30_000 }, async () => {
    const d = tempDir();
    try {
      const agent = new LocalAgent({ cores: 2, process: createProcessRuntime() });
      let running = 0;
      let peak = 0;
      const ended: string[] = [];
      const all = new Promise<void>((resolve) => {
        agent.setListener({
          started: () => {
            running++;
            peak = Math.max(peak, running);
          },
          exited: (id) => {
            running--;
            ended.push(id);
            if (ended.length === 5) resolve();
          },
        });
      });
      for (let i = 0; i < 5; i++) {
        agent.submit({
          id: `t${i}`,
          cores: i === 0 ? 2 : 1,
          memoryBytes: 0,
          exclusive: false,
          request: { id: `t${i}`, argv: ['/bin/sleep', '0.2'], env: {}, cwd: d.dir, stdoutPath: join(d.dir, `${i}.out`), stderrPath: join(d.dir, `${i}.err`), mounts: [] },
        });
      }
      await all;
      assert.ok(peak <= 2, `peak ${peak}`);
      assert.equal(ended[0], 't0', 'the 2-core task ran alone first');
    } finally {
      d.cleanup();
    }
  });

  test('refuses a task bigger than the node, saying what to do', () => {
    const agent = new LocalAgent({ cores: 2, memoryBytes: 2 ** 30, process: createProcessRuntime() });
    assert.throws(() => agent.checkFits('job big', 8, 0, false), (e: Error & { code: string; hint: string }) => e.code === 'AGENT_NOT_ENOUGH_CORES' && /at most 2/.test(e.hint));
    assert.throws(() => agent.checkFits('job fat', 1, 4 * 2 ** 30, false), (e: Error & { code: string }) => e.code === 'AGENT_NOT_ENOUGH_MEMORY');
    assert.throws(() => agent.checkFits('job img', 1, 0, true), (e: Error & { code: string; hint: string }) => e.code === 'AGENT_NO_CONTAINER_RUNTIME' && /runc/.test(e.hint));
  });
});
