// Run by rootless.test.ts as an unprivileged user: launches containers through the runtime
// and prints one JSON line with what it saw. argv: WORK_DIR (owned by this user).
import { readFileSync, readdirSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createContainerRuntime } from '../../../src/runtime/container/index.js';
import type { LaunchRequest } from '../../../src/runtime/index.js';

const work = process.argv[2]!;
const stateDir = join(work, 'state');
const warnings: string[] = [];
const rt = createContainerRuntime({
  stateDir,
  onWarning: (w) => warnings.push(w),
  prepareImage: async (uri) => {
    if (uri === 'dir') return { uri, kind: 'rootfs', path: join(work, 'rootfs'), config: { env: ['FROM_IMAGE=yes'], labels: {} } };
    if (uri === 'sqfs') return { uri, kind: 'sif', path: join(work, 'busybox.sqfs'), config: { env: [], labels: {} } };
    throw new Error(`unknown image ${uri}`);
  },
});

let n = 0;
async function run(argv: string[], container: Partial<NonNullable<LaunchRequest['container']>> = {}, extra: Partial<LaunchRequest> = {}) {
  const dir = join(work, `job${++n}`);
  mkdirSync(dir);
  const info = await rt.launch({
    id: `wf/rootless-${n}/1/1`,
    argv,
    env: {},
    cwd: dir,
    stdoutPath: join(dir, 'out'),
    stderrPath: join(dir, 'err'),
    mounts: [{ host: dir, target: dir, readOnly: false }],
    container: { image: 'dir', ...container },
    ...extra,
  }).exited;
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  const owner = existsSync(join(dir, 'written')) ? `${statSync(join(dir, 'written')).uid}:${statSync(join(dir, 'written')).gid}` : '';
  return { info, out: read('out') + (owner ? `${owner}\n` : ''), err: read('err') };
}

const result = {
  uid: process.getuid!(),
  whoami: await run(['/bin/sh', '-c', 'id -u; id -g; echo pid=$$; hostname; echo $FROM_IMAGE; touch /etc/x 2>/dev/null && echo rw || echo ro; touch written']),
  asRoot: await run(['/bin/id', '-u'], { asRoot: true }),
  squashfs: await run(['/bin/sh', '-c', 'ls /bin/busybox && id -u'], { image: 'sqfs' }),
  limited: await run(['/bin/true'], {}, { memoryBytes: 64 * 2 ** 20 }),
  timeout: await run(['/bin/sleep', '30'], {}, { timeoutSec: 0.3 }),
  warnings,
  leftContainers: existsSync(join(stateDir, 'runc')) ? readdirSync(join(stateDir, 'runc')) : [],
  leftBundles: existsSync(join(stateDir, 'bundles')) ? readdirSync(join(stateDir, 'bundles')) : [],
};
process.stdout.write(`${JSON.stringify(result)}\n`);
