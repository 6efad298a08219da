// GPU pass-through check for a machine with NVIDIA GPUs, runc and root (see gpu-check.sh):
// runs `nvidia-smi -L` inside a container through the Warren runtime with GPU 0 (or the
// indices given) allocated, and prints what it saw. argv: ROOTFS STATE_DIR [GPU...]
import { readFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createContainerRuntime } from '../../../src/runtime/container/index.js';

const [rootfs, stateDir, ...gpuArgs] = process.argv.slice(2);
const gpus = gpuArgs.length ? gpuArgs.map(Number) : [0];
const logs = mkdtempSync(join(tmpdir(), 'warren-gpu-'));
const rt = createContainerRuntime({
  stateDir: stateDir!,
  prepareImage: async (uri) => ({ uri, kind: 'rootfs', path: rootfs!, config: { env: [], labels: {} } }),
});
const req = {
  id: 'gpu-check/nvidia-smi/1/1',
  argv: ['/bin/sh', '-c', 'echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; ls /dev/nvidia*; nvidia-smi -L'],
  env: {},
  cwd: '/',
  stdoutPath: join(logs, 'out'),
  stderrPath: join(logs, 'err'),
  mounts: [],
  container: { image: 'busybox-glibc', gpus },
};
await rt.check!(req);
const info = await rt.launch(req).exited;
const out = readFileSync(join(logs, 'out'), 'utf8');
const err = readFileSync(join(logs, 'err'), 'utf8');
process.stdout.write(out);
process.stderr.write(err);
console.log(JSON.stringify(info));
const listed = (out.match(/^GPU \d+:/gm) ?? []).length;
if (info.reason !== 'exit' || info.exitCode !== 0 || listed !== gpus.length) {
  console.error(`FAIL: expected ${gpus.length} GPU(s) listed by nvidia-smi inside the container, got ${listed}`);
  process.exit(1);
}
console.log(`OK: nvidia-smi inside the container lists exactly the ${gpus.length} allocated GPU(s)`);
