/**
 * Apps' filters, run in the sandbox before the log. One core filter (placed after the built-in
 * ones) dispatches to every installed app's filters whose types a command touches. A filter
 * program gets {commands, actor} and returns {allow: true} or {allow: false, reason}. It fails
 * closed: a filter that throws, times out or breaks a limit refuses the command. Filters make no
 * host calls (they decide from the command alone), so a filter cannot write or leak anything.
 */
import { Rejection } from '../../core/errors.ts';
import type { Filter, FilterContext } from '../../core/filter.ts';
import type { Command } from '../../core/resource.ts';
import type { HostCalls, Limits, Program, Sandbox } from '../sandbox/index.ts';
import type { CapabilitySpec, FilterSpec, LoadedApp } from './manifest.ts';

interface Entry {
  app: string;
  name: string;
  types: string[] | null;
  program: Program;
  limits: Partial<Limits>;
}

export function limitsOf(spec: CapabilitySpec): Partial<Limits> {
  const l: Partial<Limits> = {};
  if (spec.timeoutMs !== undefined) {
    l.cpuMs = spec.timeoutMs;
    l.wallMs = spec.timeoutMs;
  }
  if (spec.memoryMb !== undefined) l.memoryMb = spec.memoryMb;
  return l;
}

const noHost: HostCalls = {
  call: (method) => Promise.reject(new Error(`filters make no host calls (${method}); decide from the commands given`)),
};

export class AppFilters implements Filter {
  readonly name = 'app';
  private entries: Entry[] = [];
  private sandbox: Sandbox | null = null;

  /** The sandbox comes after the core opens (the core needs this filter first). */
  attach(sandbox: Sandbox): void {
    this.sandbox = sandbox;
  }

  /** Installs (or replaces) an app's filters. */
  set(app: LoadedApp): void {
    this.remove(app.manifest.name);
    for (const [name, f] of app.filters) {
      const spec: FilterSpec = f.spec;
      this.entries.push({ app: app.manifest.name, name, types: spec.types ?? null, program: f.program, limits: limitsOf(spec) });
    }
  }

  remove(app: string): void {
    this.entries = this.entries.filter((e) => e.app !== app);
  }

  get count(): number {
    return this.entries.length;
  }

  check(commands: Command[], ctx: FilterContext): void | Promise<void> {
    // Synchronous when no app filter covers these commands: no sandbox trip, no await.
    if (!this.entries.some((e) => !e.types || commands.some((c) => e.types!.includes(c.resource.type.replace(/\/observed$/, ''))))) return;
    return this.run(commands, ctx);
  }

  private async run(commands: Command[], ctx: FilterContext): Promise<void> {
    for (const e of this.entries) {
      const relevant = e.types ? commands.filter((c) => e.types!.includes(c.resource.type.replace(/\/observed$/, ''))) : commands;
      if (relevant.length === 0) continue;
      const who = `${e.app}.${e.name}`;
      if (!this.sandbox) throw new Rejection(who, 'the sandbox is not running; the command is refused');
      let out: unknown;
      try {
        out = (await this.sandbox.run(e.program, { commands: relevant, actor: ctx.actor }, noHost, e.limits)).output;
      } catch (err) {
        throw new Rejection(who, `the filter failed (${(err as Error).message}), so the command is refused`);
      }
      const verdict = out as { allow?: unknown; reason?: unknown } | null;
      if (!verdict || verdict.allow !== true) {
        const reason = typeof verdict?.reason === 'string' && verdict.reason ? verdict.reason : 'refused (the filter did not return {allow: true})';
        throw new Rejection(who, reason.split('\n')[0].slice(0, 500));
      }
    }
  }
}
