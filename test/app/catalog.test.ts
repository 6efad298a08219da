// Every template of Fuzzball's application catalog (github.com/ctrliq/ciq-fuzzball-catalog)
// renders with its own values.yaml. The catalog is not part of this repository: the test
// reads it from $WARREN_FUZZBALL_CATALOG (a checkout, or a bare git repository) or from the
// places listed below, and skips (saying why) when there is none.
//
// Some templates refuse their own values on purpose (a secret or a password must be given):
// the test then gives each value the refusal names a placeholder, as a user would with
// --set, and renders again. Every rendered workflow must then be valid for Warren's reader
// (services with network and probes, annotations, inline files, v4 volumes with `use`...).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { applySets, parseValuesText, renderTemplate, type TemplateValue } from '../../src/app/index.js';
import { WarrenError } from '../../src/common/index.js';
import { parseWorkflowText } from '../../src/workflow/index.js';
import { repoRoot, sharedDir } from '../helpers.js';


interface Catalog {
  where: string;
  apps: string[];
  read(app: string, file: string): string;
}

function findCatalog(): Catalog | string {
  const candidates = [
    process.env.WARREN_FUZZBALL_CATALOG,
    resolve(repoRoot, '..', 'ciq-fuzzball-catalog'),
    join(sharedDir, 'ciq-fuzzball-catalog'),
    '/work/.mirror/ctrliq+ciq-fuzzball-catalog/repo',
  ].filter((c): c is string => c !== undefined && c !== '');
  for (const dir of candidates) {
    if (existsSync(join(dir, 'applications'))) {
      const apps = readdirSync(join(dir, 'applications')).filter((a) => existsSync(join(dir, 'applications', a, 'template.yaml'))).sort();
      return { where: dir, apps, read: (a, f) => readFileSync(join(dir, 'applications', a, f), 'utf8') };
    }
    if (existsSync(join(dir, 'HEAD')) && existsSync(join(dir, 'objects'))) {
      const git = (...args: string[]): string => execFileSync('git', ['--git-dir', dir, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      let list: string;
      try {
        list = git('ls-tree', '-r', '--name-only', 'HEAD', 'applications/');
      } catch {
        continue;
      }
      const apps = list
        .split('\n')
        .map((p) => /^applications\/([^/]+)\/template\.yaml$/.exec(p)?.[1])
        .filter((a): a is string => a !== undefined)
        .sort();
      return { where: `${dir} (git HEAD)`, apps, read: (a, f) => git('show', `HEAD:applications/${a}/${f}`) };
    }
  }
  return `no Fuzzball catalog found: set WARREN_FUZZBALL_CATALOG to a checkout of github.com/ctrliq/ciq-fuzzball-catalog (looked in ${candidates.join(', ')})`;
}

const catalog = findCatalog();

/** Render; when the template refuses its values, give the values it names a placeholder and try again. */
function renderApp(c: Catalog, app: string): { text: string; placeholders: string[] } {
  const tpl = c.read(app, 'template.yaml');
  let values: TemplateValue[] = parseValuesText(c.read(app, 'values.yaml'), `${app}/values.yaml`);
  const placeholders: string[] = [];
  for (let round = 0; ; round++) {
    try {
      return { text: renderTemplate(tpl, values, { templateFile: `${app}/template.yaml`, valuesFile: `${app}/values.yaml` }).text, placeholders };
    } catch (e) {
      const names = e instanceof WarrenError && e.code === 'APP_TEMPLATE_FAILED' ? (e.details?.values as string[]) : [];
      const fresh = names.filter((n) => !placeholders.includes(n));
      if (round > 8 || fresh.length === 0) throw e;
      const sets = fresh.map((n) => {
        const v = values.find((x) => x.name === n)!;
        return `${n}=${v.kind === 'secret' ? `secret://user/${n}` : v.kind === 'volume' ? 'volume://user/ephemeral' : v.kind === 'uint' ? '1' : v.kind === 'bool' ? 'true' : `placeholder-${n}`}`;
      });
      values = applySets(values, sets, `${app}/values.yaml`);
      placeholders.push(...fresh);
    }
  }
}

describe('the Fuzzball application catalog', { skip: typeof catalog === 'string' ? catalog : false }, () => {
  const c = catalog as Catalog;

  test('has its templates', () => {
    assert.ok(c.apps.length >= 40, `${c.where}: ${c.apps.length} templates`);
  });

  test('every template renders with its own values, and every rendered workflow is valid', (t) => {
    const report: string[] = [];
    const failures: string[] = [];
    for (const app of c.apps) {
      let r: { text: string; placeholders: string[] };
      try {
        r = renderApp(c, app);
      } catch (e) {
        failures.push(`${app}: ${(e as Error).message}`);
        continue;
      }
      const { workflow, diagnostics } = parseWorkflowText(r.text, `${app} (rendered)`);
      const errors = diagnostics.filter((d) => d.severity === 'error');
      const with_ = r.placeholders.length ? ` (with --set for ${r.placeholders.join(', ')})` : '';
      if (workflow) report.push(`valid    ${app}${with_}`);
      else report.push(`invalid  ${app}${with_}: ${errors.length} error(s), e.g. ${errors.slice(0, 2).map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`).join('; ')}`);
      if (!workflow) failures.push(`${app} does not validate: ${errors.slice(0, 3).map((d) => `${d.line}:${d.col} ${d.path}: ${d.message}`).join('; ')}`);
    }
    t.diagnostic(`catalog: ${c.where}`);
    for (const line of report) t.diagnostic(line);
    assert.deepEqual(failures, []);
  });

  test('a template that needs a secret names it when it is missing', () => {
    if (!c.apps.includes('vllm-server')) return;
    const values = parseValuesText(c.read('vllm-server', 'values.yaml'), 'values.yaml');
    try {
      renderTemplate(c.read('vllm-server', 'template.yaml'), values, { templateFile: 'template.yaml', valuesFile: 'values.yaml' });
      assert.fail('rendered without ServerApiKey');
    } catch (e) {
      assert.ok(e instanceof WarrenError);
      assert.equal(e.code, 'APP_TEMPLATE_FAILED');
      assert.match(e.message, /ServerApiKey is required \[values: ServerApiKey\]$/);
    }
  });
});
