/**
 * The os0 command line: the composition root. Each subcommand lives in its own module and is
 * loaded only when it runs, so `os0 --version` stays fast.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('os0')
  .description('osØ — the operating system for a fleet of machines')
  .version(pkg.version, '-v, --version', 'print the version')
  .showHelpAfterError('(run os0 --help for usage)')
  .exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 1 ? 2 : e.exitCode);
  console.error(`os0: ${(e as Error).message}`);
  process.exit(1);
}
