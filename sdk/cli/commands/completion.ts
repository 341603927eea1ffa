/**
 * Shell completion. `os0 completion bash|zsh|fish` prints a script that asks `os0 __complete
 * WORDS...` for the candidates of the last word: commands and flags come from the command tree,
 * types and names from the live server (at OS0_URL, with the usual token), flag values from
 * what the flag takes. A server that does not answer within COMPLETE_TIMEOUT_MS completes nothing.
 */
import type { Command, Option } from 'commander';
import type { Resource } from '../../../core/resource.ts';
import { Client, CliError } from '../client.ts';

const COMPLETE_TIMEOUT_MS = 1500;
/** Names offered at most (a long list helps nobody at a prompt). */
const CANDIDATES_MAX = 500;

const SCRIPTS: Record<string, string> = {
  bash: `# os0 completion for bash: source <(os0 completion bash)
_os0() {
  local IFS=$'\\n'
  local cur=\${COMP_WORDS[COMP_CWORD]}
  COMPREPLY=( $(compgen -W "$(os0 __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" -- "$cur") )
}
complete -o default -F _os0 os0
`,
  zsh: `#compdef os0
# os0 completion for zsh: source <(os0 completion zsh)  (after compinit)
_os0() {
  local -a items
  items=("\${(@f)$(os0 __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -a items
}
compdef _os0 os0
`,
  fish: `# os0 completion for fish: os0 completion fish | source
complete -c os0 -f -a '(os0 __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`,
};

export function script(shell: string): void {
  const s = SCRIPTS[shell];
  if (!s) throw new CliError(`no completion for "${shell}": choose bash, zsh or fish`, 2);
  process.stdout.write(s);
}

const longOf = (o: Option): string | undefined => o.long ?? o.short;

/** Prints the candidates for the last of `words` (the word being typed, maybe empty). */
export async function complete(program: Command, words: string[]): Promise<void> {
  const out = await candidates(program, words).catch(() => [] as string[]);
  const partial = words.at(-1) ?? '';
  process.stdout.write(out.filter((c) => c.startsWith(partial)).slice(0, CANDIDATES_MAX).map((c) => `${c}\n`).join(''));
}

async function candidates(program: Command, words: string[]): Promise<string[]> {
  const typed = words.slice(0, -1);
  const partial = words.at(-1) ?? '';
  let cmd = program;
  const positionals: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < typed.length; i++) {
    const w = typed[i];
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub && positionals.length === 0) {
      cmd = sub;
      continue;
    }
    if (w.startsWith('-')) {
      const opt = cmd.options.find((o) => o.long === w || o.short === w);
      if (opt && (opt.required || opt.optional) && i + 1 < typed.length) flags[opt.attributeName()] = typed[++i];
      continue;
    }
    positionals.push(w);
  }
  // The value of a flag?
  const prev = typed.at(-1);
  const valueOf = prev?.startsWith('-') ? cmd.options.find((o) => (o.long === prev || o.short === prev) && (o.required || o.optional)) : undefined;
  if (valueOf) {
    const name = valueOf.attributeName();
    if (name === 'output') return ['table', 'json', 'yaml'];
    if (name === 'namespace') return names(flags, 'namespace');
    return [];
  }
  if (partial.startsWith('-')) return cmd.options.map(longOf).filter((s): s is string => !!s).concat('--help');
  if (cmd.commands.length > 0) return cmd.commands.filter((c) => c.name() !== '__complete').map((c) => c.name());
  const path = [];
  for (let c: Command | null = cmd; c && c !== program; c = c.parent) path.unshift(c.name());
  const where = path.join(' ');
  if (['get', 'watch', 'delete', 'explain', 'describe'].includes(where)) {
    if (positionals.length === 0) return typeWords(flags);
    if (positionals.length === 1 && where !== 'explain' && where !== 'watch') return names(flags, positionals[0]);
    return [];
  }
  if (where === 'uninstall' || where === 'upgrade') return positionals.length === 0 ? names(flags, 'app') : [];
  if (where === 'invoke' && positionals.length === 0) {
    return (await list(flags, 'capability')).map((r) => r.name); // APP.CAPABILITY
  }
  if (where === 'completion') return Object.keys(SCRIPTS);
  return [];
}

async function list(flags: Record<string, string>, type: string): Promise<Resource[]> {
  const client = new Client({ url: flags.url, token: flags.token });
  const q = new URLSearchParams({ type });
  if (flags.namespace && type !== 'namespace') q.set('namespace', flags.namespace);
  const res = await client.fetch('GET', `/v1/resources?${q}`, undefined, AbortSignal.timeout(COMPLETE_TIMEOUT_MS));
  return (await res.json()) as Resource[];
}

async function typeWords(flags: Record<string, string>): Promise<string[]> {
  const { typeInfo } = await import('./types.ts');
  const types = (await list(flags, 'type')).map(typeInfo);
  return [...types.map((t) => t.name), ...types.flatMap((t) => t.shortNames)];
}

async function names(flags: Record<string, string>, word: string): Promise<string[]> {
  let type = word;
  if (word !== 'namespace' && word !== 'app') {
    const { resolveType } = await import('./types.ts');
    type = (await resolveType(new Client({ url: flags.url, token: flags.token }), word)).name;
  }
  return [...new Set((await list(flags, type)).map((r) => r.name))];
}
