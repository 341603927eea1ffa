// npm links the bins of dependencies, not the project's own: `prepare` links node_modules/.bin/os0
// so that the command also runs from a plain shell as node_modules/.bin/os0.
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
mkdirSync(`${root}node_modules/.bin`, { recursive: true });
rmSync(`${root}node_modules/.bin/os0`, { force: true });
symlinkSync('../../sdk/cli/bin.js', `${root}node_modules/.bin/os0`);
