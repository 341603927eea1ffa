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

/**
 * `os0 up` listens where the clients of this shell look: the port of OS0_URL when that names
 * this machine (127.0.0.1 or localhost), else 7070.
 */
function defaultUpPort(): string {
  try {
    const u = new URL(process.env.OS0_URL ?? '');
    if ((u.hostname === '127.0.0.1' || u.hostname === 'localhost') && u.port) return u.port;
  } catch {}
  return '7070';
}

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
  .option('--port <n>', 'API port (the registry listens on port+1); default the port of a loopback $OS0_URL, else 7070', defaultUpPort())
  .option('--bus <url>', 'embedded, or nats://HOST:PORT[,HOST:PORT...]')
  .option('--dns-port <n>', "the host agent's DNS server on 127.0.0.1 (UDP and TCP, zone os0.; 0: any free port)", '7053')
  .option('--heartbeat-ms <n>', "the host agent's heartbeat interval (5000)")
  .option('--retain-records <n>', 'log records kept on disk for watches to resume from (500000)')
  .option('--history-records <n>', 'log records kept in memory for watches and handlers (2048)')
  .option('--segment-bytes <n>', 'WAL segment size (67108864)')
  .option('--bookmark-seconds <s>', 'seconds between bookmarks on an idle watch (15)')
  .option('--app <dir>', 'load an app folder and make its capabilities invocable (repeat; for development)', collect)
  .action(async (o) => (await import('./commands/up.ts')).up(o));

remote(program.command('apply').description('create or update the resources in a YAML or JSON file'))
  .option('-f, --file <file>', 'file with one or more resource documents, or - for standard input')
  .option('-n, --namespace <ns>', 'namespace for documents that name none (cluster-wide types keep none)')
  .option('--atomic', 'apply all documents in one atomic batch')
  .action(async (o) => (await import('./commands/resources.ts')).apply(o));

remote(program.command('get').description('list resources of a type, or show one (types: os0 get type)').argument('<type>', 'a type, its plural or short name (ns, cfg, svc...)').argument('[name]'))
  .option('-n, --namespace <ns>', 'namespace (and everything below it)')
  .option('-l, --selector <tags>', 'tags: k=v, k!=v, k (present), !k (absent), comma-separated')
  .option('--observed', 'the observed state')
  .option('--reveal', "a secret's values (needs the reveal verb)")
  .action(async (type, name, o) => (await import('./commands/resources.ts')).get(type, name, o));

remote(program.command('delete').description('delete a resource (and what it owns)').argument('<type>').argument('<name>'))
  .option('-n, --namespace <ns>', 'namespace')
  .action(async (type, name, o) => (await import('./commands/resources.ts')).del(type, name, o));

remote(program.command('watch').description('list resources of a type, then stream their changes (reconnects and resumes)').argument('<type>'))
  .option('-n, --namespace <ns>', 'namespace (and everything below it)')
  .option('-l, --selector <tags>', 'tags: k=v, k!=v, k (present), !k (absent), comma-separated')
  .option('--since <index>', 'no list: only the changes after this log index')
  .option('--observed', 'the observed state')
  .action(async (type, o) => (await import('./commands/watch.ts')).watch(type, o));

remote(program.command('explain').description("print a type's description, scope and data schema").argument('<type>'))
  .action(async (type, o) => (await import('./commands/types.ts')).explain(type, o));

remote(program.command('describe').description('desired and observed state, recent changes, and why it is pending').argument('<type>').argument('<name>'))
  .option('-n, --namespace <ns>', 'namespace')
  .action(async (type, name, o) => (await import('./commands/fleet.ts')).describe(type, name, o));

remote(program.command('cordon').description('place nothing new on a machine').argument('<machine>'))
  .action(async (name, o) => (await import('./commands/fleet.ts')).cordon(name, o));

remote(program.command('uncordon').description('let the scheduler use a machine again (ends a drain)').argument('<machine>'))
  .action(async (name, o) => (await import('./commands/fleet.ts')).uncordon(name, o));

remote(program.command('drain').description("cordon a machine and move its tasks elsewhere").argument('<machine>'))
  .option('--deadline <duration>', 'after this, whatever is left moves (or goes pending)', '5m')
  .option('--parallelism <n>', 'tasks moved at a time', '1')
  .option('--no-wait', 'return once the drain is asked for')
  .action(async (name, o) => (await import('./commands/fleet.ts')).drain(name, o));

remote(program.command('log').description('the command log: who did what, at which index'))
  .option('--since <index>', 'records after this index (default: the newest 100)')
  .option('--limit <n>', 'the newest N records (with --since: the first N after it)')
  .action(async (o) => (await import('./commands/resources.ts')).log(o));

remote(program.command('invoke').description('run an app capability and print its output as JSON').argument('<app.capability>'))
  .option('--input <json>', 'the input, as JSON')
  .option('-i, --input-file <file>', 'the input, from a JSON file (- for standard input)')
  .action(async (target, o) => (await import('./commands/invoke.ts')).invoke(target, o));

program
  .command('keygen')
  .description('write a publisher key pair: publisher.key (secret, mode 0600) and publisher.pub')
  .option('--out <dir>', 'directory for the keys (default $OS0_HOME, else ~/.config/os0; never a git work tree unless given here)')
  .action(async (o) => (await import('./commands/pack.ts')).keygen(o));

program
  .command('new')
  .description('scaffold an app or a driver folder that type-checks, tests, packs and publishes as it stands')
  .argument('<kind>', 'app or driver')
  .argument('<name>', 'its name (lowercase letters, digits, -)')
  .option('--dir <dir>', 'the folder to create (default ./NAME)')
  .action(async (kind, name, o) => (await import('./commands/new.ts')).newCommand(kind, name, o));

program
  .command('pack')
  .description('check the manifest, compile every program and write NAME-VERSION.tgz')
  .argument('[dir]', 'the app folder', '.')
  .option('--out <file>', 'the package file (default NAME-VERSION.tgz)')
  .option('--key <file>', 'sign with this publisher.key (default: unsigned; publish signs it)')
  .addOption(new Option('-o, --output <format>', 'table or json').default('table'))
  .action(async (dir, o) => (await import('./commands/pack.ts')).pack(dir, o));

/** The flags of commands that talk to a registry (publish, search, registry ...). */
function registryFlags(cmd: Command): Command {
  return cmd
    .option('--registry <url>', 'registry URL (default: the embedded registry of the instance at $OS0_URL, i.e. its port + 1)')
    .option('--registry-token <token>', 'registry token (default $OS0_REGISTRY_TOKEN, else the instance token)')
    .option('--url <url>', 'osØ API whose embedded registry to use (default $OS0_URL or http://127.0.0.1:7070)')
    .option('--token <token>', 'osØ token, accepted by the embedded registry (default $OS0_TOKEN or ./.os0/admin.token)')
    .addOption(new Option('-o, --output <format>', 'table, json or yaml').default('table'));
}

registryFlags(program.command('publish').description('sign (if needed) and publish an app folder or a .tgz to a registry').argument('[target]', 'app folder or NAME-VERSION.tgz', '.'))
  .option('--key <file>', 'publisher.key to sign with (default: the one os0 keygen wrote, in $OS0_HOME or ~/.config/os0; else ./publisher.key)')
  .action(async (target, o) => (await import('./commands/publish.ts')).publish(target, o));

registryFlags(program.command('search').description('search the embedded registry and every added one (or --registry URL) by name, description and keywords').argument('<term>'))
  .option('--limit <n>', 'at most this many results', '20')
  .action(async (term, o) => (await import('./commands/registries.ts')).search(term, o));

const registry = program.command('registry').description('a package registry: serve one, or manage what you published');
registry
  .command('serve')
  .description('run a registry on its own; prints a "ready" line and writes DIR/admin.token')
  .option('--data <dir>', 'data directory', './.os0-registry')
  .option('--port <n>', 'port', '7080')
  .action(async (o) => (await import('./commands/registry.ts')).serve(o));
registryFlags(registry.command('yank').description('mark a published version as yanked (or --undo)').argument('<app@version>'))
  .option('--reason <text>')
  .option('--undo', 'un-yank it')
  .action(async (target, o) => (await import('./commands/publish.ts')).yank(target, o));
registryFlags(registry.command('rotate-key').description('hand an app over to a new publisher key, signed by the current one').argument('<app>'))
  .requiredOption('--key <file>', 'the current publisher.key')
  .requiredOption('--new-key <file>', 'the new key\'s .pub')
  .action(async (app, o) => (await import('./commands/publish.ts')).rotateKey(app, o));
registryFlags(registry.command('recover').description('replace a lost publisher key of an app with the registry\'s root key (operator)').argument('<app>'))
  .requiredOption('--root-key <file>', "the registry's root.key")
  .requiredOption('--new-key <file>', 'the new key\'s .pub')
  .action(async (app, o) => (await import('./commands/publish.ts')).recover(app, o));
remote(registry.command('add').description("add a registry to install from, pinning its metadata key").argument('<name>').argument('<url>'))
  .option('--key <fingerprint>', "the registry's metadata key fingerprint (or base64 key), as its operator gives it")
  .option('--description <text>')
  .action(async (name, url, o) => (await import('./commands/registries.ts')).add(name, url, o));
remote(registry.command('ls').description('list the added registries and their pinned keys')).action(async (o) => (await import('./commands/registries.ts')).ls(o));
remote(registry.command('rm').description('stop installing from a registry').argument('<name>')).action(async (name, o) => (await import('./commands/registries.ts')).rm(name, o));
const rtoken = registry.command('token').description('registry tokens');
registryFlags(rtoken.command('create').description('create a registry token for a publisher (printed once)').argument('<actor>'))
  .option('--description <text>')
  .action(async (actor, o) => (await import('./commands/publish.ts')).tokenCreate(actor, o));
registryFlags(rtoken.command('ls').description('list registry tokens')).action(async (o) => (await import('./commands/publish.ts')).tokenLs(o));
registryFlags(rtoken.command('revoke').description('revoke a registry token').argument('<id>')).action(async (id, o) => (await import('./commands/publish.ts')).tokenRevoke(id, o));

const trust = program.command('trust').description("the publisher keys this osØ instance accepts");
remote(trust.command('add').description('trust a publisher key (or, with --root, a registry root key)').argument('<file.pub>'))
  .option('--root', "a registry operator's root key: accepts key recoveries it signs")
  .option('--description <text>')
  .action(async (file, o) => (await import('./commands/store.ts')).trustAdd(file, o));
remote(trust.command('ls').description('list trusted keys')).action(async (o) => (await import('./commands/store.ts')).trustLs(o));
remote(trust.command('rm').description('stop trusting a key').argument('<keyId>')).action(async (id, o) => (await import('./commands/store.ts')).trustRm(id, o));

remote(program.command('install').description('install an app and its dependencies from the registry').argument('<app[@range]>'))
  .option('--registry <name|url>', 'install from this registry (os0 registry ls), default the embedded one')
  .option('-y, --yes', 'confirm the permissions asked for without a prompt (scripts)')
  .option('--allow-downgrade', 'accept versions older than ones this instance accepted before (rollback protection)')
  .action(async (target, o) => (await import('./commands/store.ts')).install(target, o));
remote(program.command('upgrade').description("upgrade an app, running its update migration").argument('<app[@range]>'))
  .option('--registry <name|url>', 'upgrade from this registry (default: the added registry it came from, else the embedded one)')
  .option('-y, --yes', 'confirm the permissions asked for without a prompt (scripts)')
  .option('--allow-downgrade', 'accept a version older than the installed one')
  .action(async (target, o) => (await import('./commands/store.ts')).upgrade(target, o));
remote(program.command('uninstall').description('remove an app and everything its install wrote').argument('<app>'))
  .option('--force', 'remove it even though other apps depend on it (names what breaks)')
  .option('-y, --yes', 'accepted for scripts (uninstall asks nothing; --force is what overrides dependants)')
  .action(async (app, o) => (await import('./commands/store.ts')).uninstall(app, o));
remote(program.command('apps').description('list installed apps')).action(async (o) => (await import('./commands/store.ts')).apps(o));

const node = program.command('node').description('node agents: run one here, or make a token for one');
node
  .command('join')
  .description('run a node agent on this machine, joined to osØ at --url; prints a "ready" line')
  .option('--url <url>', 'osØ API (default $OS0_URL or http://127.0.0.1:7070)')
  .option('--token <token>', 'a node token from `os0 node token NAME` (default $OS0_TOKEN)')
  .option('--bus <url>', "the bus: nats://HOST:PORT[,...] (default: the core's embedded bus at URL/v1/bus)")
  .option('--name <name>', 'the node name (default: the host name)')
  .option('--data <dir>', 'the agent\'s directory (default ./.os0-node-NAME)')
  .option('--cpu <n>', 'CPUs offered (default: all)')
  .option('--memory-mb <n>', 'memory offered in MiB (default: all)')
  .option('--ports <A-B>', 'ports processes get PORT from (default 20000-20999)')
  .option('--labels <k=v,...>', 'labels for scheduling')
  .option('--dns-port <n>', 'the DNS device on 127.0.0.1 (default 0: any free port)')
  .option('--heartbeat-ms <n>', 'heartbeat interval (5000); the machine is down after three missed')
  .action(async (o) => (await import('./commands/node.ts')).join(o));
remote(node.command('token').description('make a token for actor node:NAME (printed once; admins only)').argument('<name>')).action(async (name, o) => (await import('./commands/node.ts')).token(name, o));

const token = program.command('token').description('API tokens');
remote(token.command('create').description('create a token for an actor (printed once)').argument('<actor>'))
  .option('-g, --group <group>', 'a group of the actor (repeat)', collect)
  .option('--description <text>')
  .action(async (actor, o) => (await import('./commands/tokens.ts')).create(actor, o));
remote(token.command('ls').description('list tokens (never their secrets)')).action(async (o) => (await import('./commands/tokens.ts')).ls(o));
remote(token.command('revoke').description('revoke a token').argument('<id>')).action(async (id, o) => (await import('./commands/tokens.ts')).revoke(id, o));

const secret = program.command('secret').description('secrets, sealed at rest');
remote(secret.command('set').description('seal and store a secret\'s values').argument('<name>').argument('[pairs...]', 'KEY=VALUE'))
  .option('-n, --namespace <ns>', 'namespace')
  .option('--from-file <pair>', 'KEY=FILE: a value read from a file (repeat)', collect)
  .action(async (name, pairs, o) => (await import('./commands/secret.ts')).set(name, pairs, o));
remote(secret.command('rotate-key').description('a new key-encryption key; every secret is re-sealed in the background')).action(async (o) => (await import('./commands/secret.ts')).rotateKey(o));
remote(secret.command('key').description('the key-encryption key in use, and re-sealing progress')).action(async (o) => (await import('./commands/secret.ts')).key(o));

program
  .command('completion')
  .description('print a shell completion script: source <(os0 completion bash), or zsh, or os0 completion fish | source')
  .argument('<shell>', 'bash, zsh or fish')
  .action(async (shell) => (await import('./commands/completion.ts')).script(shell));
program
  .command('__complete', { hidden: true })
  .description('candidates for the last word (used by the completion scripts)')
  .argument('[words...]')
  .allowUnknownOption()
  .helpOption(false)
  .action(async (words: string[]) => (await import('./commands/completion.ts')).complete(program, words ?? []));

// A bad --url (or OS0_URL) is a usage error, found before anything is sent.
program.hook('preAction', async (_, cmd) => {
  if (!cmd.options.some((o) => o.long === '--url')) return;
  const { url } = await import('./args.ts');
  const o = cmd.opts() as { url?: string };
  if (o.url !== undefined) url(o.url, '--url');
  else if (process.env.OS0_URL) url(process.env.OS0_URL, 'OS0_URL');
});

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
