import { describe } from 'node:test';
import { LocalAgent } from '../../src/agent/index.js';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { tempDir } from '../helpers.js';
import { agentContract } from './contract.js';

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
