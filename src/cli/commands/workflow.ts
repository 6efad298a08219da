// `warren validate FILE...` and `warren schema`: checking workflow files without running them.
import type { Command } from 'commander';
import { EXIT, toWarrenError, warrenHome } from '../../common/index.js';
import { formatDiagnostic, parseWorkflowText, readStorageClasses, workflowJsonSchema, type Diagnostic } from '../../workflow/index.js';
import { readWorkflowText } from '../../workflow/index.js';

interface FileResult {
  file: string;
  valid: boolean;
  dialect?: string;
  jobs?: number;
  services?: number;
  diagnostics: Diagnostic[];
  error?: { code: string; message: string; hint?: string };
}

/** Validate one file; never throws. */
export function validateFile(file: string): FileResult {
  let text: string;
  try {
    text = readWorkflowText(file);
  } catch (e) {
    const err = toWarrenError(e);
    return { file, valid: false, diagnostics: [], error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
  }
  let storageClasses;
  try {
    storageClasses = readStorageClasses(warrenHome());
  } catch (e) {
    const err = toWarrenError(e);
    return { file, valid: false, diagnostics: [], error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
  }
  const { workflow, diagnostics } = parseWorkflowText(text, file, { storageClasses });
  if (!workflow) return { file, valid: false, diagnostics };
  const all = Object.values(workflow.jobs);
  const services = all.filter((j) => j.service).length;
  return { file, valid: true, dialect: workflow.dialect, jobs: all.length - services, services, diagnostics };
}

export function register(program: Command): void {
  program
    .command('validate')
    .description('check workflow files (Fuzzfile YAML v1/v4 or WfFormat JSON) without running them')
    .argument('<file...>', 'workflow files')
    .option('--json', 'print the results and diagnostics as JSON')
    .action((files: string[], opts: { json?: boolean }) => {
      const results = files.map(validateFile);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      } else {
        for (const r of results) {
          if (r.error) {
            process.stderr.write(`error[${r.error.code}]: ${r.error.message}\n${r.error.hint ? `  hint: ${r.error.hint}\n` : ''}`);
            continue;
          }
          for (const d of r.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
          if (r.valid) {
            const n = `${r.jobs} job${r.jobs === 1 ? '' : 's'}${r.services ? `, ${r.services} service${r.services === 1 ? '' : 's'}` : ''}`;
            process.stdout.write(`${r.file}: ok (${n})\n`);
          } else {
            const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
            process.stderr.write(`${r.file}: ${errors} error${errors === 1 ? '' : 's'}\n`);
          }
        }
      }
      if (results.some((r) => !r.valid)) process.exitCode = EXIT.usage;
    });

  program
    .command('schema')
    .description('print the JSON Schema of the workflow (Fuzzfile) format')
    .action(() => {
      process.stdout.write(`${JSON.stringify(workflowJsonSchema(), null, 2)}\n`);
    });
}

