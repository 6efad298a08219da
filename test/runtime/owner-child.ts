// Run by hardening.test.ts as a Warren process that owns one job and then dies or exits.
// argv: LAUNCHER(spawner|node) DIR ACTION(kill9|exit|wait) ISOLATION(auto|process-group)
// The job (attempt id `att-owner`) starts a setsid grandchild; this prints one JSON line
// {pid, cgroup, launcher, grandchild} once both run, then does ACTION.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createProcessRuntime } from '../../src/runtime/index.js';
import { Spawner } from '../../src/runtime/spawner.js';

const [launcher, dir, action, isolation] = process.argv.slice(2) as ['spawner' | 'node', string, string, 'auto' | 'process-group'];
const rt = createProcessRuntime({ launcher, isolation });
let info: { pid: number; cgroup: string | null } | undefined;
const t = rt.launch({
  id: 'owner/job/1/1',
  argv: ['/bin/sh', '-c', `setsid sh -c 'echo $$ > ${dir}/gc.pid; exec sleep 60' & sleep 60`],
  env: { PATH: '/usr/bin:/bin', WARREN_ATTEMPT_ID: 'att-owner' },
  cwd: dir,
  stdoutPath: join(dir, 'out'),
  stderrPath: join(dir, 'err'),
  mounts: [],
  beforeExec: async (i) => {
    info = i;
  },
});
await t.started;
const gcFile = join(dir, 'gc.pid');
for (let i = 0; i < 500 && !(existsSync(gcFile) && readFileSync(gcFile, 'utf8').endsWith('\n')); i++) await new Promise((r) => setTimeout(r, 10));
process.stdout.write(JSON.stringify({ ...info, launcher: Spawner.get()?.pid ?? null, grandchild: Number(readFileSync(gcFile, 'utf8')) }) + '\n');
if (action === 'kill9') process.kill(process.pid, 'SIGKILL');
else if (action === 'exit') process.exit(0);
else setInterval(() => {}, 1000);
