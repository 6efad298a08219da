#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm run build`).
import { main } from '../dist/src/cli/index.js';
main(process.argv).then((code) => { process.exitCode = code; });
