/** os0 node join (a node agent on this machine, joined to an osØ at --url) and os0 node token NAME. */
import * as os from 'node:os';
import * as path from 'node:path';
import { CliError, Client } from '../client.ts';
import { format, print } from '../output.ts';
import type { Common } from './resources.ts';

export interface JoinOptions {
  url?: string;
  token?: string;
  bus?: string;
  name?: string;
  data?: string;
  cpu?: string;
  memoryMb?: string;
  ports?: string;
  labels?: string;
  dnsPort?: string;
  heartbeatMs?: string;
}

const STOP_DEADLINE_MS = 10_000;

/** A node name from the host name: lowercase, other characters as "-". */
export function hostNodeName(): string {
  const n = os.hostname().toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[-_]+|[-_]+$/g, '').slice(0, 64);
  return n || 'node';
}

function num(v: string | undefined, flag: string, int: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (int && !Number.isInteger(n))) throw new CliError(`${flag} must be a ${int ? 'whole ' : ''}number (got ${v})`, 2);
  return n;
}

export function parsePorts(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
  if (!m) throw new CliError(`--ports must be A-B, e.g. 20000-20999 (got ${v})`, 2);
  return [Number(m[1]), Number(m[2])];
}

export function parseLabels(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!v) return out;
  for (const kv of v.split(',')) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliError(`--labels takes k=v,k2=v2 (got "${kv}")`, 2);
    out[kv.slice(0, i).trim()] = kv.slice(i + 1).trim();
  }
  return out;
}

export async function join(o: JoinOptions): Promise<void> {
  const client = new Client({ url: o.url, token: o.token });
  if (!client.token) throw new CliError('os0 node join needs --token: a node token from `os0 node token NAME` on the core', 2);
  const name = o.name ?? hostNodeName();
  const cpu = num(o.cpu, '--cpu', false);
  const memoryMb = num(o.memoryMb, '--memory-mb', true);
  const ports = parsePorts(o.ports);
  const labels = parseLabels(o.labels);
  const dnsPort = num(o.dnsPort, '--dns-port', true);
  const heartbeatMs = num(o.heartbeatMs, '--heartbeat-ms', true);
  const { Agent, checkAgentOptions } = await import('../../../runtime/agent/agent.ts');
  const bad = checkAgentOptions({ name, capacity: { cpu, memoryMb }, ports, labels, heartbeatMs });
  if (bad) throw new CliError(bad, 2);
  if (dnsPort !== undefined && dnsPort > 65535) throw new CliError(`--dns-port must be a port number (got ${o.dnsPort})`, 2);

  // The token must be a node's, for this node: ask the core who it is (also checks --url).
  const who = await client.json<{ actor: string }>('GET', '/v1/whoami').catch((e) => {
    throw e instanceof CliError ? e : new CliError(String(e));
  });
  if (who.actor !== `node:${name}`) throw new CliError(`the token is ${who.actor}'s, not node:${name}'s; make one with \`os0 node token ${name}\` (or pass --name)`, 2);

  const report = (m: string): void => void process.stderr.write(`os0: ${m}\n`);
  const dataDir = path.resolve(o.data ?? `./.os0-node-${name}`);
  let bus: import('../../../core/bus/index.ts').Bus | null = null;
  let agent: InstanceType<typeof Agent> | null = null;
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    report(`${why}: stopping (processes keep running; the next agent on ${dataDir} adopts them)`);
    setTimeout(() => process.exit(1), STOP_DEADLINE_MS).unref();
    let code = 0;
    try {
      await agent?.stop();
      await bus?.close();
    } catch (e) {
      report((e as Error).message);
      code = 1;
    }
    process.exit(code);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void stop(sig));
  for (const out of [process.stdout, process.stderr]) out.on('error', () => {});
  const { watchParent } = await import('../lifeline.ts');
  watchParent((why) => void stop(why));
  const { openBus } = await import('../../../core/bus/index.ts');
  const spec = o.bus ?? `${client.url}/v1/bus`;
  if (!spec.startsWith('nats://') && !spec.startsWith('http://') && !spec.startsWith('https://')) throw new CliError(`--bus must be nats://HOST:PORT[,...] or the core's http://HOST:PORT/v1/bus (got ${spec})`, 2);
  bus = await openBus(spec, { token: client.token }).catch((e: Error) => {
    throw new CliError(`the bus ${spec}: ${e.message}`);
  });
  agent = new Agent({ name, dataDir, bus, api: client.api, capacity: { cpu, memoryMb }, ports, labels, heartbeatMs, dnsPort: dnsPort ?? 0, dnsHost: '127.0.0.1', report });

  try {
    await agent.start();
  } catch (e) {
    await bus.close().catch(() => {});
    if (stopping) return new Promise(() => {});
    throw new CliError(`node ${name}: ${(e as Error).message}`);
  }
  if (stopping) return new Promise(() => {});
  process.stdout.write(`node ${name} ready: joined ${client.url} over ${spec.startsWith('nats://') ? spec : 'the embedded bus'} (data ${dataDir}, dns 127.0.0.1:${agent.dnsPort})\n`);
  await new Promise(() => {});
}

export async function token(name: string, opts: Common): Promise<void> {
  const f = format(opts.output);
  const t = await new Client(opts).json<{ id: string; actor: string; token: string }>('POST', `/v1/nodes/${encodeURIComponent(name)}/token`);
  if (f === 'table') {
    process.stdout.write(`${t.token}\n`);
    process.stderr.write(`token ${t.id} for ${t.actor}: shown once; use it with os0 node join --token\n`);
  } else print(f, t, () => []);
}
