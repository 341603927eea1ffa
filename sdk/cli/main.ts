/**
 * The os0 command line: the composition root. Each subcommand's module is loaded only when it
 * runs, so `os0 --version` stays fast. Exit status: 0 success, 1 the request failed or was
 * rejected (the reason on stderr), 2 usage error.
 */
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { CliError } from './client.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('os0')
  .description('osØ — the operating system for a fleet of machines')
  .version(pkg.version, '-v, --version', 'print the version')
  .showHelpAfterError('(run os0 --help for usage)')
  .exitOverride();

/** The client flags every remote command takes. */
function remote(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'osØ API (default $OS0_URL or http://127.0.0.1:7070)')
    .option('--token <token>', 'bearer token (default $OS0_TOKEN or ./.os0/admin.token)')
    .addOption(new Option('-o, --output <format>', 'table, json or yaml').default('table'));
}
const collect = (v: string, prev: string[] = []) => [...prev, v];

program
  .command('up')
  .description('start osØ on this machine with embedded defaults')
  .option('--data <dir>', 'data directory', './.os0')
  .option('--port <n>', 'API port (the registry listens on port+1)', '7070')
  .option('--bus <url>', 'embedded, or nats://HOST:PORT')
  .option('--retain-records <n>', 'log records kept on disk for watches to resume from (500000)')
  .option('--history-records <n>', 'log records kept in memory for watches and handlers (2048)')
  .option('--segment-bytes <n>', 'WAL segment size (67108864)')
  .option('--bookmark-seconds <s>', 'seconds between bookmarks on an idle watch (15)')
  .option('--app <dir>', 'load an app folder and make its capabilities invocable (repeat; until the store installs apps)', collect)
  .action(async (o) => (await import('./commands/up.ts')).up(o));

remote(program.command('apply').description('create or update the resources in a YAML or JSON file'))
  .option('-f, --file <file>', 'file with one or more resource documents, or - for standard input')
  .option('--atomic', 'apply all documents in one atomic batch')
  .action(async (o) => (await import('./commands/resources.ts')).apply(o));

remote(program.command('get').description('list resources of a type, or show one').argument('<type>').argument('[name]'))
  .option('-n, --namespace <ns>', 'namespace (and everything below it)')
  .option('-l, --selector <tags>', 'tags, k=v,k2=v2')
  .option('--observed', 'the observed state')
  .action(async (type, name, o) => (await import('./commands/resources.ts')).get(type, name, o));

remote(program.command('delete').description('delete a resource (and what it owns)').argument('<type>').argument('<name>'))
  .option('-n, --namespace <ns>', 'namespace')
  .action(async (type, name, o) => (await import('./commands/resources.ts')).del(type, name, o));

remote(program.command('watch').description('stream changes to resources of a type').argument('<type>'))
  .option('-n, --namespace <ns>', 'namespace (and everything below it)')
  .option('-l, --selector <tags>', 'tags, k=v,k2=v2')
  .option('--since <index>', 'resume after this log index')
  .option('--observed', 'the observed state')
  .action(async (type, o) => (await import('./commands/resources.ts')).watch(type, o));

remote(program.command('log').description('the command log: who did what, at which index'))
  .option('--since <index>', 'records after this index (default: the last 100)')
  .option('--limit <n>', 'at most this many records')
  .action(async (o) => (await import('./commands/resources.ts')).log(o));

remote(program.command('invoke').description('run an app capability and print its output as JSON').argument('<app.capability>'))
  .option('--input <json>', 'the input, as JSON')
  .option('-i, --input-file <file>', 'the input, from a JSON file (- for standard input)')
  .action(async (target, o) => (await import('./commands/invoke.ts')).invoke(target, o));

program
  .command('keygen')
  .description('write a publisher key pair: publisher.key (secret, mode 0600) and publisher.pub')
  .option('--out <dir>', 'directory for the keys', '.')
  .action(async (o) => (await import('./commands/pack.ts')).keygen(o));

program
  .command('pack')
  .description('check the manifest, compile every program and write NAME-VERSION.tgz')
  .argument('[dir]', 'the app folder', '.')
  .option('--out <file>', 'the package file (default NAME-VERSION.tgz)')
  .option('--key <file>', 'sign with this publisher.key (default: unsigned; publish signs it)')
  .addOption(new Option('-o, --output <format>', 'table or json').default('table'))
  .action(async (dir, o) => (await import('./commands/pack.ts')).pack(dir, o));

const token = program.command('token').description('API tokens');
remote(token.command('create').description('create a token for an actor (printed once)').argument('<actor>'))
  .option('-g, --group <group>', 'a group of the actor (repeat)', collect)
  .option('--description <text>')
  .action(async (actor, o) => (await import('./commands/tokens.ts')).create(actor, o));
remote(token.command('ls').description('list tokens (never their secrets)')).action(async (o) => (await import('./commands/tokens.ts')).ls(o));
remote(token.command('revoke').description('revoke a token').argument('<id>')).action(async (id, o) => (await import('./commands/tokens.ts')).revoke(id, o));

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (e instanceof CliError) {
    process.stderr.write(`os0: ${e.message}\n`);
    process.exit(e.exitCode);
  }
  process.stderr.write(`os0: ${(e as Error)?.message ?? String(e)}\n`);
  process.exit(1);
}
