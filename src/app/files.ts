// Reading a template or a values file, with friendly errors (APP_FILE_UNREADABLE).
import { readFileSync, statSync } from 'node:fs';
import { WarrenError } from '../common/index.js';

export function readAppFile(path: string, what: 'template' | 'values file'): string {
  let buf: Buffer;
  try {
    if (statSync(path).isDirectory()) {
      throw new WarrenError('APP_FILE_UNREADABLE', `${path} is a directory, not a ${what}`, {
        hint: what === 'template' ? 'pass the template file itself, e.g. applications/jupyter/template.yaml' : 'pass the values file itself, e.g. --values applications/jupyter/values.yaml',
      });
    }
    buf = readFileSync(path);
  } catch (e) {
    if (e instanceof WarrenError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new WarrenError('APP_FILE_UNREADABLE', code === 'ENOENT' || code === 'ENOTDIR' ? `${what} ${path} does not exist` : `cannot read ${what} ${path}: ${(e as Error).message}`, {
      hint: code === 'ENOENT' || code === 'ENOTDIR' ? 'check the path (it is relative to the current directory)' : 'check the file permissions',
      cause: e,
    });
  }
  if (buf.includes(0)) throw new WarrenError('APP_FILE_UNREADABLE', `${path} is not a text file`, { hint: `a ${what} is YAML text` });
  const text = buf.toString('utf8');
  if (text.includes('\ufffd') && !Buffer.from(text, 'utf8').equals(buf)) {
    throw new WarrenError('APP_FILE_UNREADABLE', `${path} is not UTF-8 text`, { hint: 'convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE`)' });
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
