// `warren app render TEMPLATE --values values.yaml [--set NAME=VALUE]... [-o OUT]`: render a
// Fuzzball catalog template into a Fuzzfile, then check it as `warren validate` does.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { WarrenError } from '../../common/index.js';
import { applySets, parseValuesText, readAppFile, renderTemplate, templatePosition } from '../../app/index.js';
import { formatDiagnostic, parseWorkflowText } from '../../workflow/index.js';
import { commandGroup, writeOutputFile } from '../util.js';

interface RenderOpts {
  values?: string;
  set: string[];
  output?: string;
  validate: boolean;
}

export function register(program: Command): void {
  const app = commandGroup(program, 'app', 'Fuzzball application templates: render a catalog template with its values into a workflow');
  app
    .command('render')
    .description('render a Fuzzball catalog template (Go text/template with slim-sprig functions) with a values file into a Fuzzfile, then validate it')
    .argument('<template>', 'the template (a catalog application\'s template.yaml)')
    .option('--values <file>', 'the values file (the catalog format: values: [{name, string_value|uint_value|bool_value|...}]); default: values.yaml beside the template')
    .option('--set <name=value>', 'override a value (typed by its entry: uint_value takes a whole number, bool_value true or false); repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('-o, --output <file>', 'write the workflow to this file (default: standard output)')
    .option('--no-validate', 'do not check the rendered text as a workflow')
    .action((template: string, opts: RenderOpts) => {
      const valuesFile = opts.values ?? join(dirname(template), 'values.yaml');
      if (opts.values === undefined && !existsSync(valuesFile)) {
        throw new WarrenError('CLI_BAD_OPTION', `no values file: pass --values FILE (there is no values.yaml beside ${template})`, { hint: 'e.g. warren app render applications/jupyter/template.yaml --values applications/jupyter/values.yaml' });
      }
      const text = readAppFile(template, 'template');
      const values = applySets(parseValuesText(readAppFile(valuesFile, 'values file'), valuesFile), opts.set, valuesFile);
      const rendered = renderTemplate(text, values, { templateFile: template, valuesFile });
      if (opts.output !== undefined) writeOutputFile(opts.output, rendered.text);
      else process.stdout.write(rendered.text);
      if (!opts.validate) return;
      const label = opts.output ?? `${template} (rendered)`;
      const { workflow, diagnostics } = parseWorkflowText(rendered.text, label);
      for (const d of diagnostics) {
        const t = templatePosition(rendered, d.line, d.col);
        process.stderr.write(`${formatDiagnostic(d)}\n  from ${template}:${t.line}:${t.col}\n`);
      }
      if (!workflow) {
        const n = diagnostics.filter((d) => d.severity === 'error').length;
        const where = opts.output !== undefined ? `written to ${opts.output}` : 'written to standard output';
        throw new WarrenError('APP_RENDERED_INVALID', `the rendered workflow has ${n} error${n === 1 ? '' : 's'}: the positions above are in the rendered text (${where}); "from" is the template line that produced it`, {
          hint: `fix the template or its values; check a saved rendering again with \`warren validate FILE\``,
          details: { diagnostics },
        });
      }
      const all = Object.values(workflow.jobs);
      const services = all.filter((j) => j.service).length;
      const summary = `${all.length - services} job${all.length - services === 1 ? '' : 's'}${services ? `, ${services} service${services === 1 ? '' : 's'}` : ''}`;
      if (opts.output !== undefined) process.stdout.write(`${opts.output}: ok (${summary}), rendered from ${template}\n`);
      else process.stderr.write(`${template}: rendered, ok (${summary})\n`);
    });
}
