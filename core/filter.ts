/**
 * Command filters: what stands between a command and the log. A filter refuses by throwing a
 * Rejection (or any OsError), passes by returning nothing, or fills in defaults by returning
 * the commands to use instead.
 */
import type { Command, Resource } from './resource.ts';

/** What a filter can read: the tree as it will be once every accepted command is applied. */
export interface StateView {
  get(namespace: string, type: string, name: string): Resource | null;
  getById(id: string): Resource | null;
}

export interface FilterContext {
  /** Who sent the command (a token's actor id, or a zero-proc's name). */
  actor: string;
  view: StateView;
  /** Set when the app store itself submits (install, upgrade, uninstall): only it may change the store's own resources. */
  via?: 'store';
}

/** One resource change as the core plans to log it. */
export interface PlannedChange {
  command: Command;
  old: Resource | null;
  /** The resource as it will be stored; null for a delete. */
  next: Resource | null;
  /** For a delete that an owner's delete brought with it: the owner's id. */
  cascadeFrom?: string;
}

export interface Filter {
  readonly name: string;
  /**
   * Before sequencing; may be slow and asynchronous (sandboxed app filters). Returns nothing to
   * pass, or the commands to use instead (defaults filled in).
   */
  check?(commands: Command[], ctx: FilterContext): void | Command[] | Promise<void | Command[]>;
  /**
   * At sequencing, synchronously, against the state including accepted writes that are not yet
   * durable, so no two concurrent commands can both slip past it (quotas). May set fields of
   * `change.next` (defaults such as cost).
   */
  admit?(change: PlannedChange, ctx: FilterContext): void;
  /** A change this filter admitted will not be applied after all (its batch failed, or the WAL refused it). */
  release?(change: PlannedChange): void;
  /** Called once after recovery, before anything is submitted: rebuild state from the tree. */
  load?(view: { all(): Iterable<Resource> }): void;
}
