import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { job } from '../engine/builders.js';
import { LocalAgent } from '../../src/agent/index.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { tempDir } from '../helpers.js';
import { agentContract, Recorder, taskOf } from './contract.js';

describe('local agent', () => {
  agentContract('local', async () => {
    const d = tempDir('warren-agent-');
    const agent = new LocalAgent({ name: 'local-test', home: d.dir, cores: 2, process: createProcessRuntime() });
    return {
      agent,
      cleanup: async () => {
        await agent.close();
        d.cleanup();
      },
    };
  });
});

describe('local agent: jobs run as the submitting user\'s Unix account', () => {
  const root = process.getuid?.() === 0;
  test('a task of a user runs with that account\'s uid, gid and groups; its working directory is theirs', { skip: root ? false : 'needs root to switch users', timeout: 30_000 }, async () => {
    const d = tempDir('warren-agent-');
    chmodSync(d.dir, 0o711);
    const agent = new LocalAgent({ name: 'u', home: d.dir, cores: 1, process: createProcessRuntime() });
    try {
      const rec = new Recorder(agent);
      const t = taskOf(job('who', { command: ['/bin/sh', '-c', 'id -u; id -g; touch here'] }));
      t.user = { name: 'alice', unixUser: 'nobody' };
      agent.submit(t);
      await rec.ended(1);
      assert.equal(rec.exited.get(t.attemptId)!.exitCode, 0, JSON.stringify(rec.exited.get(t.attemptId)));
      const [uid, gid] = readFileSync(join(d.dir, 'runs', t.workflowId, 'logs', 'who.out'), 'utf8').trim().split('\n');
      const nobody = execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim();
      assert.equal(uid, nobody);
      assert.equal(gid, execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
    } finally {
      await agent.close();
      d.cleanup();
    }
  });

  test('a user without an account on the node: AGENT_NO_ACCOUNT, with what to do, and nothing runs', { timeout: 30_000 }, async () => {
    const d = tempDir('warren-agent-');
    const agent = new LocalAgent({ name: 'u', home: d.dir, cores: 1, process: createProcessRuntime() });
    try {
      const rec = new Recorder(agent);
      const t = taskOf(job('who', { command: ['/bin/sh', '-c', 'touch ran'] }));
      t.user = { name: 'zed', unixUser: 'no-such-account-here' };
      agent.submit(t);
      await rec.ended(1);
      const ex = rec.exited.get(t.attemptId)!;
      assert.equal(ex.reason, 'spawn-error');
      assert.equal(ex.failure?.code, 'AGENT_NO_ACCOUNT');
      assert.match(ex.failure?.hint ?? '', /--unix-user/);
      assert.equal(rec.started.length, 0);
    } finally {
      await agent.close();
      d.cleanup();
    }
  });
});

describe('node GPUs', () => {
  test('nvidia-smi output becomes the node\'s GPUs; junk lines are skipped', async () => {
    const { parseNvidiaSmi } = await import('../../src/agent/index.js');
    const g = parseNvidiaSmi('0, NVIDIA H200, 143771\n1, NVIDIA H200, 143771\n\nbad line\n-1, x, 5\n');
    assert.deepEqual(g, [
      { index: 0, model: 'NVIDIA H200', memoryBytes: 143771 * 2 ** 20 },
      { index: 1, model: 'NVIDIA H200', memoryBytes: 143771 * 2 ** 20 },
    ]);
    assert.deepEqual(parseNvidiaSmi(''), []);
  });
});
