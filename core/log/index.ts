/** The log reader and consumer cursors (README.md beside this file). */
export { GONE, LogReader, readFromSegments, type Gone, type LogReaderOptions } from './reader.ts';
export { DirSegments, readSegment, readSealedSegmentSync, segmentFirstIndex, type DecodedRecord, type SegmentSource } from './segments.ts';
export { BodyWriter, decodeBody, decodeRecord, deleteKeyJson, subjectOf, type Action, type Change, type Committed } from './record.ts';
export { Cursors, type CursorState, type CursorsOptions } from './cursors.ts';
