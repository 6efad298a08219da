#!/usr/bin/env -S node --max-semi-space-size=2
// Thin launcher: the compiled CLI lives in dist/ (built by scripts/setup.sh / `npm run build`).
// A small young generation keeps the peak memory of large runs low (10,000 tasks: ~105 MB
// instead of ~150 MB) at no measurable cost in speed.
import { main } from '../dist/src/cli/index.js';
main(process.argv).then((code) => { process.exitCode = code; });
