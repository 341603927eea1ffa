/**
 * Search over every app's name, description and keywords, in memory: an inverted index from
 * keyword and description word to names, and the names sorted for prefix lookups. A query's
 * terms each add to an app's score — exact name 100, name prefix 50, keyword 20, description
 * word 10 — and results come best first, then by name.
 */
import type { SearchResult } from '../client/types.ts';

export const SCORE = { exactName: 100, namePrefix: 50, keyword: 20, descriptionWord: 10 } as const;
export const MAX_QUERY_TERMS = 8;

export interface SearchDoc {
  name: string;
  version: string | null;
  description: string;
  keywords: string[];
}

const words = (s: string): string[] => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

function addTo(index: Map<string, Set<string>>, key: string, name: string): void {
  let s = index.get(key);
  if (!s) index.set(key, (s = new Set()));
  s.add(name);
}

function removeFrom(index: Map<string, Set<string>>, key: string, name: string): void {
  const s = index.get(key);
  if (!s) return;
  s.delete(name);
  if (s.size === 0) index.delete(key);
}

export class SearchIndex {
  private readonly docs = new Map<string, SearchDoc>();
  private readonly byKeyword = new Map<string, Set<string>>();
  private readonly byWord = new Map<string, Set<string>>();
  private sorted: string[] | null = [];

  get size(): number {
    return this.docs.size;
  }

  /** Adds or replaces an app's document. */
  put(doc: SearchDoc): void {
    const old = this.docs.get(doc.name);
    if (old) {
      for (const k of old.keywords) removeFrom(this.byKeyword, k.toLowerCase(), old.name);
      for (const w of words(old.description)) removeFrom(this.byWord, w, old.name);
    } else this.sorted = null;
    this.docs.set(doc.name, doc);
    for (const k of doc.keywords) addTo(this.byKeyword, k.toLowerCase(), doc.name);
    for (const w of words(doc.description)) addTo(this.byWord, w, doc.name);
  }

  private names(): string[] {
    if (!this.sorted) this.sorted = [...this.docs.keys()].sort();
    return this.sorted;
  }

  /** Names starting with `prefix`: a binary search to the first, then a walk. */
  private withPrefix(prefix: string, each: (name: string) => void): void {
    const names = this.names();
    let lo = 0;
    let hi = names.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (names[mid] < prefix) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < names.length && names[i].startsWith(prefix); i++) each(names[i]);
  }

  search(q: string, limit: number): SearchResult[] {
    const scores = new Map<string, number>();
    const add = (name: string, n: number): void => void scores.set(name, (scores.get(name) ?? 0) + n);
    const terms = [...new Set(q.toLowerCase().split(/\s+/).filter((t) => t !== ''))].slice(0, MAX_QUERY_TERMS);
    for (const term of terms) {
      if (this.docs.has(term)) add(term, SCORE.exactName);
      this.withPrefix(term, (name) => {
        if (name !== term) add(name, SCORE.namePrefix);
      });
      for (const name of this.byKeyword.get(term) ?? []) add(name, SCORE.keyword);
      for (const w of words(term)) for (const name of this.byWord.get(w) ?? []) add(name, SCORE.descriptionWord);
    }
    return [...scores]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, limit)
      .map(([name, score]) => {
        const d = this.docs.get(name)!;
        return { name, version: d.version, description: d.description, keywords: d.keywords, score };
      });
  }
}
