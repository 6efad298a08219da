// Site benchmarks: `bash bench/run.sh sites [--tasks N]` (./slurm-pilot.ts: Slurm pilots vs a Slurm job array).
import { main } from './slurm-pilot.js';

await main(process.argv.slice(2));
