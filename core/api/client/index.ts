/** The typed HTTP client of osØ's API (see client.ts), its watch stream and its event-stream reader. */
export { ApiClient, ApiError, queryString, type ApiClientOptions, type RequestOptions, type SubmitResult, type Listed, type ListQuery, type LogEntry, type TokenInfo, type HandlerQuery, type HandlerEvent, type HandlerPoll, type HandlerStatus, type InvocationResult } from './client.ts';
export { WatchStream, type WatchEvent, type WatchOptions, type WatchQuery, type ReconnectOptions } from './watch.ts';
export { readSse, MAX_EVENT_BYTES, type SseEvent } from './sse.ts';
