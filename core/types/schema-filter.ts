/**
 * The schema filter: every written resource must be of a registered type, in the right scope,
 * with `data` valid against the type's JSON Schema (compiled by Ajv, cached per type revision).
 */
import { Ajv, type ValidateFunction, type ErrorObject } from 'ajv';
import { Rejection } from '../errors.ts';
import type { Filter, FilterContext, PlannedChange, StateView } from '../filter.ts';
import type { Resource } from '../resource.ts';
import { BUILTIN_TYPES, type TypeSpec } from './builtin.ts';

const OBSERVED = '/observed';

export const baseType = (type: string): string => (type.endsWith(OBSERVED) ? type.slice(0, -OBSERVED.length) : type);
export const isObserved = (type: string): boolean => type.endsWith(OBSERVED);

function firstError(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'is invalid';
  const where = 'data' + e.instancePath.replace(/\//g, '.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
  if (e.keyword === 'additionalProperties') return `${where} has an unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'enum') return `${where} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  return `${where} ${e.message}`;
}

export class SchemaFilter implements Filter {
  readonly name = 'schema';
  private readonly ajv = new Ajv({ allErrors: false, strict: false, allowUnionTypes: true });
  private readonly cache = new Map<string, { revision: number; spec: TypeSpec; validate: ValidateFunction | null }>();

  /** The type's spec as the tree holds it now (pending writes included). */
  spec(view: StateView, type: string): TypeSpec | null {
    return this.entry(view, type)?.spec ?? null;
  }

  private entry(view: StateView, type: string): { spec: TypeSpec; validate: ValidateFunction | null } | null {
    const r = view.get('', 'type', type);
    // The `type` type validates the others, itself included: at bootstrap it is not there yet.
    if (!r) return type === 'type' ? { spec: BUILTIN_TYPES.type, validate: this.ajv.compile(BUILTIN_TYPES.type.schema!) } : null;
    const hit = this.cache.get(type);
    if (hit && hit.revision === r.revision) return hit;
    const spec = r.data as TypeSpec;
    const e = { revision: r.revision, spec, validate: spec.schema ? this.ajv.compile(spec.schema) : null };
    this.cache.set(type, e);
    return e;
  }

  admit(change: PlannedChange, ctx: FilterContext): void {
    const r = change.next ?? change.old!;
    const base = baseType(r.type);
    const entry = this.entry(ctx.view, base);
    if (!entry) throw new Rejection('schema', `unknown type "${base}"; see 'os0 get type' for the types there are, or apply a type resource first`);
    const { spec } = entry;
    const cluster = spec.scope === 'cluster';
    if (cluster && r.namespace !== '') throw new Rejection('schema', `${base} is cluster-wide: give no namespace`);
    if (!cluster && r.namespace === '') throw new Rejection('schema', `${base} lives in a namespace: give one with namespace (-n)`);
    if (isObserved(r.type)) {
      if (!spec.observed) throw new Rejection('schema', `${base} has no observed state`);
      return;
    }
    if (!change.next) {
      if (r.type === 'type') this.checkTypeDelete(r, ctx);
      return;
    }
    if (entry.validate && !entry.validate(change.next.data)) {
      throw new Rejection('schema', `${describeRes(r)}: ${firstError(entry.validate.errors)}`);
    }
    if (r.type === 'type') this.checkTypeSpec(change.next);
  }

  private checkTypeSpec(r: Resource): void {
    if (isObserved(r.name)) throw new Rejection('schema', `a type's name cannot end in ${OBSERVED}: observed state comes with observed: true`);
    const spec = r.data as TypeSpec;
    if (spec.schema) {
      try {
        this.ajv.compile(spec.schema);
      } catch (e) {
        throw new Rejection('schema', `the JSON Schema of type ${r.name} does not compile: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }

  private checkTypeDelete(r: Resource, ctx: FilterContext): void {
    if (BUILTIN_TYPES[r.name]) throw new Rejection('schema', `${r.name} is a built-in type and cannot be deleted`);
    void ctx;
  }
}

const describeRes = (r: Resource): string => `${r.type} ${r.namespace ? r.namespace + '/' : ''}${r.name}`;
