// `warren image node-build` with a server context: the server builds the node image in its data
// directory (DATA/provision/images, where its boot service serves it from). A build of a large
// image takes minutes, longer than an HTTP answer may wait: a request waits at most `answerMs`,
// then answers "building" (202); asking again joins the build in flight (one per source, kernel
// and --force), and the answer that follows its end carries the image or its error.
import type { NodeImageBuildPending, NodeImageBuildRequest, NodeImageBuildView } from '../api/index.js';
import { buildNodeImage, canonicalSource } from '../provision/index.js';

/** How long one request waits on a build before it answers "building". */
export const NODE_IMAGE_ANSWER_MS = 20_000;
/** How long the end of a build nobody asked about again is kept for its caller. */
const KEEP_ENDED_MS = 10 * 60_000;

interface Build {
  startedAt: number;
  source: string;
  log: string[];
  done: Promise<{ ok: NodeImageBuildView } | { err: unknown }>;
  ended: boolean;
}

export class NodeImageBuilds {
  private readonly builds = new Map<string, Build>();

  constructor(
    private readonly dataDir: string,
    private readonly answerMs = NODE_IMAGE_ANSWER_MS,
  ) {}

  async build(req: NodeImageBuildRequest): Promise<NodeImageBuildView | NodeImageBuildPending> {
    const source = canonicalSource(req.source); // IMAGE_REF_INVALID before anything starts
    const key = JSON.stringify([source, req.kernel ?? null, req.force === true]);
    let b = this.builds.get(key);
    if (!b) {
      const log: string[] = [];
      const startedAt = Date.now();
      const done = buildNodeImage({
        source: req.source,
        dataDir: this.dataDir,
        ...(req.kernel !== undefined ? { kernel: req.kernel } : {}),
        ...(req.force ? { force: true } : {}),
        log: (line) => log.push(line),
      }).then(
        (img) => ({ ok: { ...img, durationMs: Date.now() - startedAt, log } }),
        (err: unknown) => ({ err }),
      );
      const nb: Build = { startedAt, source, log, done, ended: false };
      b = nb;
      this.builds.set(key, nb);
      void done.then(() => {
        nb.ended = true;
        setTimeout(() => {
          if (this.builds.get(key) === nb) this.builds.delete(key);
        }, KEEP_ENDED_MS).unref();
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([b.done, new Promise<null>((r) => (timer = setTimeout(() => r(null), this.answerMs)))]);
    clearTimeout(timer);
    if (waited === null) return { building: true, source: b.source, startedAt: b.startedAt, log: [...b.log] };
    if (this.builds.get(key) === b) this.builds.delete(key); // its end is told once
    if ('err' in waited) throw waited.err;
    return waited.ok;
  }
}
