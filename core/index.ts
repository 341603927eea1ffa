/** The core's public interface: what the other layers import. */
export { Core, type CoreOptions, type Committed, type Change, type Action, type SubmitResult, type SubmitOptions } from './core.ts';
export { OsError, Rejection, type ErrorCode } from './errors.ts';
export type { Filter, FilterContext, PlannedChange, StateView } from './filter.ts';
export { API_VERSION, LIMITS, checkSubmission, keyOf, type Command, type Op, type Resource, type ResourceInput, type Submission } from './resource.ts';
export type { Query } from './tree/tree.ts';
export type { FileIO, WritableFile } from './fileio.ts';
