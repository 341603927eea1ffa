/** busØ: the interface, and `openBus` that picks an implementation from a flag (README.md). */
import { OsError } from '../errors.ts';
import type { Bus, BusLimits } from './bus.ts';
import { EmbeddedBus } from './embedded/index.ts';
import { RemoteBus } from './embedded/remote.ts';
import { NatsBus } from './nats/index.ts';

export * from './bus.ts';
export { EmbeddedBus, type EmbeddedBusOptions } from './embedded/index.ts';
export { RemoteBus, type RemoteBusOptions } from './embedded/remote.ts';
export { busRoutes, type BusAuthorize, type BusOp } from './embedded/routes.ts';
export { NatsBus, type NatsBusOptions } from './nats/index.ts';

export interface OpenBusOptions {
  /** The embedded bus's directory (DATA/bus); needed for 'embedded'. */
  dir?: string;
  limits?: Partial<BusLimits>;
  /** A node token, for a core's bus over HTTP. */
  token?: string;
  /** Names this instance's streams on a shared NATS (os0). */
  prefix?: string;
}

/**
 * `os0 up --bus SPEC` / `os0 node join --bus SPEC`:
 * - `embedded`: the bus in this process, in `dir`;
 * - `nats://HOST:PORT[,HOST:PORT…]`: NATS JetStream;
 * - `http(s)://HOST:PORT/v1/bus`: a core's embedded bus, from an agent on another machine.
 */
export async function openBus(spec: string, opts: OpenBusOptions = {}): Promise<Bus> {
  if (spec === 'embedded') {
    if (!opts.dir) throw new OsError('invalid', 'the embedded bus needs a directory');
    return EmbeddedBus.open({ dir: opts.dir, limits: opts.limits });
  }
  if (spec.startsWith('nats://')) return NatsBus.open({ servers: spec, limits: opts.limits, prefix: opts.prefix });
  if (spec.startsWith('http://') || spec.startsWith('https://')) return new RemoteBus({ url: spec, token: opts.token });
  throw new OsError('invalid', `--bus "${spec}" is not a bus: use "embedded", nats://HOST:PORT[,HOST:PORT…] or the core's http://HOST:PORT/v1/bus`);
}
