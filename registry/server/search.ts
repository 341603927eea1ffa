/**
 * Search over every app's name, description and keywords, in memory: an inverted index from
 * keyword and description word to apps, and the names sorted for prefix lookups. A query's
 * terms each add to an app's score — exact name 100, name prefix 50, keyword 20, description
 * word 10 — and results come best first, then by name.
 *
 * Apps are numbered (apps are never removed, a new version replaces the document): scores
 * accumulate in a typed array, and the ranking is one numeric sort of score‖name-rank keys,
 * so that a term matching thousands of apps costs well under a millisecond.
 */
import type { SearchResult } from '../client/types.ts';

export const SCORE = { exactName: 100, namePrefix: 50, keyword: 20, descriptionWord: 10 } as const;
export const MAX_QUERY_TERMS = 8;
const RANK_SPAN = 2 ** 24; // names ranked below 16M apps; score * RANK_SPAN stays an exact double

export interface SearchDoc {
  name: string;
  version: string | null;
  description: string;
  keywords: string[];
}

const words = (s: string): string[] => s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

function addTo(index: Map<string, Set<number>>, key: string, id: number): void {
  let s = index.get(key);
  if (!s) index.set(key, (s = new Set()));
  s.add(id);
}

function removeFrom(index: Map<string, Set<number>>, key: string, id: number): void {
  const s = index.get(key);
  if (!s) return;
  s.delete(id);
  if (s.size === 0) index.delete(key);
}

export class SearchIndex {
  private readonly ids = new Map<string, number>();
  private readonly docs: SearchDoc[] = [];
  private readonly byKeyword = new Map<string, Set<number>>();
  private readonly byWord = new Map<string, Set<number>>();
  private scores = new Float64Array(1024);
  /** Ids in name order, and each id's place in it; rebuilt after an app is added. */
  private sortedIds: Int32Array | null = null;
  private rank = new Int32Array(0);

  get size(): number {
    return this.docs.length;
  }

  /** Adds or replaces an app's document. */
  put(doc: SearchDoc): void {
    let id = this.ids.get(doc.name);
    if (id !== undefined) {
      const old = this.docs[id];
      for (const k of old.keywords) removeFrom(this.byKeyword, k.toLowerCase(), id);
      for (const w of words(old.description)) removeFrom(this.byWord, w, id);
    } else {
      if (this.docs.length >= RANK_SPAN) throw new Error(`search: more than ${RANK_SPAN} apps`);
      id = this.docs.length;
      this.ids.set(doc.name, id);
      this.sortedIds = null;
      if (id >= this.scores.length) {
        const grown = new Float64Array(this.scores.length * 2);
        grown.set(this.scores);
        this.scores = grown;
      }
    }
    this.docs[id] = doc;
    for (const k of doc.keywords) addTo(this.byKeyword, k.toLowerCase(), id);
    for (const w of words(doc.description)) addTo(this.byWord, w, id);
  }

  private order(): Int32Array {
    if (!this.sortedIds) {
      const ids = Int32Array.from(this.docs.keys());
      const names = this.docs.map((d) => d.name);
      ids.sort((a, b) => (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0));
      this.rank = new Int32Array(ids.length);
      for (let i = 0; i < ids.length; i++) this.rank[ids[i]] = i;
      this.sortedIds = ids;
    }
    return this.sortedIds;
  }

  search(q: string, limit: number): SearchResult[] {
    const sorted = this.order();
    const scores = this.scores;
    const touched: number[] = [];
    const add = (id: number, n: number): void => {
      if (scores[id] === 0) touched.push(id);
      scores[id] += n;
    };
    const terms = [...new Set(q.toLowerCase().split(/\s+/).filter((t) => t !== ''))].slice(0, MAX_QUERY_TERMS);
    for (const term of terms) {
      const exact = this.ids.get(term);
      if (exact !== undefined) add(exact, SCORE.exactName);
      // names starting with the term: a binary search to the first, then a walk
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.docs[sorted[mid]].name < term) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < sorted.length; i++) {
        const id = sorted[i];
        const name = this.docs[id].name;
        if (!name.startsWith(term)) break;
        if (id !== exact) add(id, SCORE.namePrefix);
      }
      for (const id of this.byKeyword.get(term) ?? []) add(id, SCORE.keyword);
      for (const w of words(term)) for (const id of this.byWord.get(w) ?? []) add(id, SCORE.descriptionWord);
    }
    // score desc, then name asc: one key per app, sorted numerically, read from the top
    const keys = new Float64Array(touched.length);
    for (let i = 0; i < touched.length; i++) {
      const id = touched[i];
      keys[i] = scores[id] * RANK_SPAN + (RANK_SPAN - 1 - this.rank[id]);
      scores[id] = 0;
    }
    keys.sort();
    const out: SearchResult[] = [];
    for (let i = keys.length - 1; i >= 0 && out.length < limit; i--) {
      const score = Math.floor(keys[i] / RANK_SPAN);
      const d = this.docs[sorted[RANK_SPAN - 1 - (keys[i] - score * RANK_SPAN)]];
      out.push({ name: d.name, version: d.version, description: d.description, keywords: d.keywords, score });
    }
    return out;
  }
}
