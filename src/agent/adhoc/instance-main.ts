// The supervisor of one instance (see instance.ts): started detached by `warren instance
// start`, it reads its job from stdin, runs the container to its end with the instance's log
// files as stdio, writes the record once the container runs, and removes it at the end.
import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isWarrenError } from '../../common/index.js';
import type { AdhocRequest } from '../../runtime/container/index.js';
import { runcOf, writeFailure, writeRecord } from './instance.js';

interface Job {
  name: string;
  dir: string;
  logs: { stdout: string; stderr: string };
  request: AdhocRequest;
  image: string;
}

async function main(): Promise<void> {
  const job = JSON.parse(readFileSync(0, 'utf8')) as Job;
  // A new session already (detached); the supervisor itself ignores the terminal's signals.
  process.on('SIGHUP', () => undefined);
  process.on('SIGINT', () => undefined);
  const out = openSync(job.logs.stdout, 'w', 0o600);
  const err = openSync(job.logs.stderr, 'a', 0o600);
  let recorded = false;
  const { runAdhoc } = await import('../../runtime/container/index.js');
  try {
    const status = await runAdhoc({
      ...job.request,
      stdio: { stdout: out, stderr: err },
      instance: {
        name: job.name,
        onStarted: ({ cid, runcRoot }) => {
          // Running once runc says so (the container's first process exists).
          const poll = (): void => {
            execFile(runcOf(), ['--root', runcRoot, ...((process.getuid?.() ?? 0) !== 0 ? ['--rootless', 'true'] : []), 'state', cid], (e, stdout) => {
              if (recorded) return;
              if (!e) {
                try {
                  const st = JSON.parse(String(stdout)) as { status?: string; pid?: number };
                  if (st.status === 'running' && st.pid) {
                    recorded = true;
                    writeRecord(job.dir, {
                      name: job.name,
                      image: job.image,
                      pid: process.pid,
                      containerPid: st.pid,
                      cid,
                      runcRoot,
                      startedAt: new Date().toISOString(),
                      logs: job.logs,
                      // Who `exec instance://` runs as: root for a --fakeroot instance.
                      uid: job.request.fakeroot ? 0 : (process.getuid?.() ?? 0),
                      gid: job.request.fakeroot ? 0 : (process.getgid?.() ?? 0),
                    });
                    return;
                  }
                } catch {
                  /* not yet */
                }
              }
              setTimeout(poll, 20);
            });
          };
          setTimeout(poll, 10);
        },
      },
      onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
    });
    if (!recorded) writeFailure(job.dir, { message: `the instance ended as it started`, status });
    recorded = true;
  } catch (e) {
    recorded = true;
    if (isWarrenError(e)) writeFailure(job.dir, { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    else writeFailure(job.dir, { message: (e as Error).message });
  } finally {
    rmSync(join(job.dir, 'record.json'), { force: true });
    closeSync(out);
    closeSync(err);
  }
}

void main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`warren instance supervisor: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
