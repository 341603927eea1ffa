/**
 * The in-memory tree of live resources and its indexes. Reads never scan the whole tree when an
 * index can answer:
 *   id                   → resource                       (byId)
 *   (namespace, type, name) → resource                    (namespace node → type → name)
 *   namespace prefix     → the subtree of namespace nodes  (a trie of path segments)
 *   type                 → the namespace nodes holding it  (byType)
 *   tag key=value        → resources                      (tags)
 * Resources are shared, frozen-by-convention objects: callers must not mutate what they get.
 */
import type { Resource } from '../resource.ts';
import { selects, type TagSelector } from './selector.ts';

class NsNode {
  readonly path: string;
  readonly parent: NsNode | null;
  children: Map<string, NsNode> | null = null;
  readonly types = new Map<string, Map<string, Resource>>();
  constructor(path: string, parent: NsNode | null) {
    this.path = path;
    this.parent = parent;
  }
}

export interface Query {
  type?: string;
  /** Matches this namespace and everything below it ('' or absent: everywhere). */
  namespace?: string;
  /** Only this namespace, not the ones below it. */
  exact?: boolean;
  /** Every key=value must match. */
  tags?: Record<string, string>;
  /** More tag requirements (k, !k, k!=v: see selector.ts); `k` is answered from the tag index. */
  select?: TagSelector;
  /** Stop after this many results. */
  limit?: number;
  /**
   * Only resources whose (namespace, type) this admits (the permission filter's decision, made
   * once per namespace node and type, not per resource). Set in process, never from a request.
   */
  admit?: (namespace: string, type: string) => boolean;
}

const underNs = (ns: string, prefix: string): boolean =>
  prefix === '' || ns === prefix || (ns.length > prefix.length && ns.charCodeAt(prefix.length) === 47 && ns.startsWith(prefix));

export class Tree {
  private readonly root = new NsNode('', null);
  private readonly nodes = new Map<string, NsNode>([['', this.root]]);
  private readonly byId = new Map<string, Resource>();
  private readonly byType = new Map<string, Set<NsNode>>();
  private readonly tagIndex = new Map<string, Map<string, Map<string, Resource>>>();
  /** owner id → ids of the resources it owns. */
  private readonly owned = new Map<string, Set<string>>();

  get size(): number {
    return this.byId.size;
  }

  get(namespace: string, type: string, name: string): Resource | undefined {
    return this.nodes.get(namespace)?.types.get(type)?.get(name);
  }

  getById(id: string): Resource | undefined {
    return this.byId.get(id);
  }

  /** Inserts or replaces the resource at its (namespace, type, name); returns the one replaced. */
  put(r: Resource): Resource | undefined {
    const node = this.node(r.namespace);
    let names = node.types.get(r.type);
    if (!names) {
      names = new Map();
      node.types.set(r.type, names);
      let holders = this.byType.get(r.type);
      if (!holders) this.byType.set(r.type, (holders = new Set()));
      holders.add(node);
    }
    const old = names.get(r.name);
    names.set(r.name, r);
    if (old) {
      if (old.id !== r.id) this.byId.delete(old.id);
      this.untag(old, r);
      if (old.owner) this.unown(old);
    }
    this.byId.set(r.id, r);
    this.tag(r);
    if (r.owner) for (const o of r.owner) {
      let ids = this.owned.get(o);
      if (!ids) this.owned.set(o, (ids = new Set()));
      ids.add(r.id);
    }
    return old;
  }

  /** Removes the resource at (namespace, type, name); returns it. */
  delete(namespace: string, type: string, name: string): Resource | undefined {
    const node = this.nodes.get(namespace);
    const names = node?.types.get(type);
    const old = names?.get(name);
    if (!node || !names || !old) return undefined;
    names.delete(name);
    this.byId.delete(old.id);
    this.untag(old, null);
    if (old.owner) this.unown(old);
    if (names.size === 0) {
      node.types.delete(type);
      const holders = this.byType.get(type)!;
      holders.delete(node);
      if (holders.size === 0) this.byType.delete(type);
      this.prune(node);
    }
    return old;
  }

  /** The resources matching every part of the query (unordered). */
  query(q: Query): Resource[] {
    const out: Resource[] = [];
    const limit = q.limit ?? Infinity;
    const ns = q.namespace ?? '';
    const tagKeys = q.tags ? Object.keys(q.tags) : [];
    const sel = q.select && (q.select.notEqual || q.select.present?.length || q.select.absent?.length) ? q.select : undefined;
    if (tagKeys.length > 0 || sel?.present?.length) {
      // Start from the most selective tag (k=v, else all values of k) and filter the rest.
      let best: Iterable<Resource> | undefined;
      let bestSize = Infinity;
      for (const k of tagKeys) {
        const m = this.tagIndex.get(k)?.get(q.tags![k]);
        if (!m) return out;
        if (m.size < bestSize) [best, bestSize] = [m.values(), m.size];
      }
      if (!best) {
        for (const k of sel!.present!) {
          const vals = this.tagIndex.get(k);
          if (!vals) return out;
          let n = 0;
          for (const m of vals.values()) n += m.size;
          if (n < bestSize) [best, bestSize] = [(function* () { for (const m of vals.values()) yield* m.values(); })(), n];
        }
      }
      for (const r of best!) {
        if (q.type !== undefined && r.type !== q.type) continue;
        if (q.exact ? r.namespace !== ns : !underNs(r.namespace, ns)) continue;
        if (q.admit && !q.admit(r.namespace, r.type)) continue;
        let ok = true;
        for (const k of tagKeys) if (r.tags[k] !== q.tags![k]) ok = false;
        if (ok && sel && !selects(sel, r.tags)) ok = false;
        if (ok && out.push(r) >= limit) break;
      }
      return out;
    }
    const collect = (names: Map<string, Resource> | undefined): boolean => {
      if (names) for (const r of names.values()) if ((!sel || selects(sel, r.tags)) && out.push(r) >= limit) return true;
      return false;
    };
    const admit = q.admit;
    if (ns === '' && !q.exact && q.type !== undefined) {
      for (const node of this.byType.get(q.type) ?? []) {
        if (admit && !admit(node.path, q.type)) continue;
        if (collect(node.types.get(q.type))) break;
      }
      return out;
    }
    const start = this.nodes.get(ns);
    if (!start) return out;
    const stack = [start];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (q.type !== undefined) {
        if ((!admit || admit(node.path, q.type)) && collect(node.types.get(q.type))) break;
      } else {
        let full = false;
        for (const [type, names] of node.types) if ((!admit || admit(node.path, type)) && (full = collect(names))) break;
        if (full) break;
      }
      if (!q.exact && node.children) for (const c of node.children.values()) stack.push(c);
    }
    return out;
  }

  /** Ids of the resources that name `id` as an owner. */
  ownedBy(id: string): ReadonlySet<string> | undefined {
    return this.owned.get(id);
  }

  private unown(r: Resource): void {
    for (const o of r.owner!) {
      const ids = this.owned.get(o);
      ids?.delete(r.id);
      if (ids?.size === 0) this.owned.delete(o);
    }
  }

  /** How many resources of a type live in a namespace and below it. */
  count(type: string, namespace: string): number {
    let n = 0;
    for (const node of this.byType.get(type) ?? []) if (underNs(node.path, namespace)) n += node.types.get(type)!.size;
    return n;
  }

  /** Every resource (unordered). */
  all(): IterableIterator<Resource> {
    return this.byId.values();
  }

  private node(path: string): NsNode {
    let n = this.nodes.get(path);
    if (n) return n;
    const cut = path.lastIndexOf('/');
    const parent = cut < 0 ? this.root : this.node(path.slice(0, cut));
    n = new NsNode(path, parent);
    (parent.children ??= new Map()).set(path.slice(cut + 1), n);
    this.nodes.set(path, n);
    return n;
  }

  private prune(node: NsNode): void {
    let n: NsNode | null = node;
    while (n && n !== this.root && n.types.size === 0 && (!n.children || n.children.size === 0)) {
      const parent: NsNode = n.parent!;
      parent.children!.delete(n.path.slice(n.path.lastIndexOf('/') + 1));
      this.nodes.delete(n.path);
      n = parent;
    }
  }

  private tag(r: Resource): void {
    for (const k in r.tags) {
      let vals = this.tagIndex.get(k);
      if (!vals) this.tagIndex.set(k, (vals = new Map()));
      const v = r.tags[k];
      let ids = vals.get(v);
      if (!ids) vals.set(v, (ids = new Map()));
      ids.set(r.id, r);
    }
  }

  /** Removes old's tag entries that `next` (same key, or null) does not keep. */
  private untag(old: Resource, next: Resource | null): void {
    for (const k in old.tags) {
      const v = old.tags[k];
      if (next && next.id === old.id && next.tags[k] === v) continue;
      const vals = this.tagIndex.get(k)!;
      const ids = vals.get(v)!;
      ids.delete(old.id);
      if (ids.size === 0) {
        vals.delete(v);
        if (vals.size === 0) this.tagIndex.delete(k);
      }
    }
  }
}
