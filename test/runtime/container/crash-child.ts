// Run by runtime.test.ts: starts a long container (squashfs image: loop mount + overlay,
// memory limit: cgroup) and reports "started"; the test then kills this process with
// SIGKILL, as a crash, and checks that the next runtime cleans up. argv: STATE_DIR SQFS LOG_DIR
import { join } from 'node:path';
import { createContainerRuntime } from '../../../src/runtime/container/index.js';

const [stateDir, sqfs, dir] = process.argv.slice(2) as [string, string, string];
const rt = createContainerRuntime({ stateDir, prepareImage: async (uri) => ({ uri, kind: 'sif', path: sqfs, config: { env: [], labels: {} } }) });
const t = rt.launch({
  id: 'crash/sleeper/1/1',
  argv: ['/bin/sleep', '600'],
  env: {},
  cwd: '/',
  stdoutPath: join(dir, 'out'),
  stderrPath: join(dir, 'err'),
  mounts: [{ host: dir, target: '/data', readOnly: false }],
  memoryBytes: 64 * 2 ** 20,
  container: { image: 'sqfs' },
});
const pid = await t.started!;
process.stdout.write(`started ${pid}\n`);
setInterval(() => {}, 1000);
