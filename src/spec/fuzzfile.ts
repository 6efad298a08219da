// The Fuzzfile YAML dialects (v1 and v4). Work in progress: see the full implementation soon.
import type { Diagnostic, Workflow } from './types.js';

export function parseFuzzfile(_text: string, file: string): { workflow?: Workflow; diagnostics: Diagnostic[] } {
  return {
    diagnostics: [
      { file, line: 1, col: 1, path: '', message: 'YAML Fuzzfiles are not supported yet', hint: 'use a WfFormat JSON file for now', severity: 'error' },
    ],
  };
}
