// `warren upgrade FILE [-o OUT | --in-place]`: rewrite a v1 Fuzzfile as v4.
import type { Command } from 'commander';
import { WarrenError } from '../../common/index.js';
import { readWorkflowText, upgradeFuzzfile } from '../../workflow/index.js';
import { writeOutputFile } from '../util.js';

export function register(program: Command): void {
  program
    .command('upgrade')
    .description('rewrite a v1 Fuzzfile as v4 (requires -> depends-on, mounts keyed by path), keeping its comments and layout')
    .argument('<file>', 'the v1 Fuzzfile')
    .option('-o, --output <file>', 'write the v4 file here (default: standard output)')
    .option('--in-place', 'replace FILE with its v4 version')
    .action((file: string, opts: { output?: string; inPlace?: boolean }) => {
      if (opts.inPlace && opts.output !== undefined) {
        throw new WarrenError('CLI_BAD_OPTION', '--in-place and -o/--output exclude each other', { hint: 'give one: --in-place rewrites FILE, -o OUT writes OUT' });
      }
      const r = upgradeFuzzfile(readWorkflowText(file), file);
      const target = opts.inPlace ? file : opts.output;
      if (!r.changed) {
        process.stderr.write(`${file} is already version v4: nothing to upgrade${target !== undefined && !opts.inPlace ? ` (copied unchanged to ${target})` : ''}\n`);
        if (target === undefined) process.stdout.write(r.text);
        else if (!opts.inPlace) writeOutputFile(target, r.text);
        return;
      }
      if (target === undefined) process.stdout.write(r.text);
      else writeOutputFile(target, r.text);
      const to = target === undefined ? 'standard output' : target;
      process.stderr.write(`${file}: upgraded to v4 (${to}); ${r.changes.length} change${r.changes.length === 1 ? '' : 's'}:\n${r.changes.map((c) => `  ${c}\n`).join('')}`);
    });
}
