// Run by encrypted-run.test.ts as an unprivileged user: runs an encrypted SIF through the
// container runtime (rootless) and prints one JSON line with what it saw.
// argv: WORK_DIR (owned by this user, holds enc.sif), BIN_DIR (tools without squashfuse).
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createContainerRuntime } from '../../../src/runtime/container/index.js';

const work = process.argv[2]!;
const bin = process.argv[3]!;
const pass = process.env.WARREN_TEST_PASS!;
const stateDir = join(work, 'state');
const shm = `/dev/shm/warren-crypt-${process.getuid!()}`;
const prepareImage = async (uri: string) => ({ uri, kind: 'sif' as const, path: join(work, 'enc.sif'), config: { env: [], labels: {} } });

let n = 0;
async function run(toolPath: string | undefined, passphrase: string) {
  const rt = createContainerRuntime({ stateDir, prepareImage, ...(toolPath ? { toolPath } : {}) });
  const dir = join(work, `job${++n}`);
  mkdirSync(dir);
  const task = rt.launch({
    id: `wf/enc-${n}/1/1`,
    argv: ['/bin/sh', '-c', 'cat /marker; sleep 1'],
    env: {},
    cwd: '/',
    stdoutPath: join(dir, 'out'),
    stderrPath: join(dir, 'err'),
    mounts: [],
    container: { image: 'enc', decryption: { passphrase } },
  });
  let via: string | undefined;
  if ((await task.started) !== null) {
    // Where the root file system is while it runs: an extraction in the private /dev/shm directory?
    for (const d of existsSync(shm) ? readdirSync(shm) : []) {
      const r = join(shm, d, 'rootfs');
      if (existsSync(r)) via = `${join(r, readdirSync(r)[0] ?? '')}/`;
    }
  }
  const info = await task.exited;
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  return { reason: info.reason, out: read('out'), err: `${read('err')}${info.message ?? ''}`, ...(via ? { via } : {}) };
}

const result = {
  extracted: await run(bin, pass),
  default: await run(undefined, pass),
  fuse: undefined as unknown,
  wrong: await run(bin, 'wrong'),
  shmLeft: existsSync(shm) ? readdirSync(shm) : [],
  bundlesLeft: existsSync(join(stateDir, 'bundles')) ? readdirSync(join(stateDir, 'bundles')) : [],
};
result.fuse = result.default;
process.stdout.write(`${JSON.stringify(result)}\n`);
