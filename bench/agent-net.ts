/**
 * The node agent's network devices on 127.0.0.1, run by `npm run bench -- agent` (bench/agent.ts calls runNet).
 *
 *   1. DNS queries/s over UDP, with Debian's `dnsperf` as the client: a mix of A, AAAA, SRV,
 *      TXT, CNAME, NXDOMAIN and REFUSED questions against the dns device in this process;
 *   2. HTTP requests/s with Debian's `wrk`, straight to a backend and through the proxy device in
 *      the same run, keep-alive and a new connection per request (`Connection: close`). The
 *      backend is a node HTTP server in a child process; the proxy runs in this process, which
 *      is otherwise idle while wrk runs. A bare node `net` pipe is measured beside it, as the
 *      reference any node proxy starts from;
 *   3. the targets, PASS or FAIL (reported, never an exit code).
 *
 * `runNet(opts)` is exported so that bench/agent.ts can run it beside the process figures.
 * Every load run is bounded (LOAD_S seconds) and aimed at 127.0.0.1 only.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SuiteOptions } from './run.ts';
import { DnsDevice } from '../runtime/agent/devices/dns/index.ts';
import { ProxyDevice } from '../runtime/agent/devices/proxy/index.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = path.join(root, '.bench-data', 'agent-net');
const log = (m: string): void => void process.stderr.write(`  agent-net: ${m}\n`);

const DNSPERF = '/usr/bin/dnsperf';
const WRK = '/usr/bin/wrk';
const LOAD_S = 3;
const DNS_TARGET_QPS = 20_000;
const PROXY_TARGET_RATIO = 0.7;
const WRK_CONNECTIONS = 32;
/** Rounds of (direct, proxy, bare pipe) wrk runs, compared within a round: short runs close in
 * time see the same other load, and the median over rounds drops the unlucky ones. */
const ROUNDS = 5;
const WRK_S = 2;

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

function exec(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function dnsQps(report: SuiteOptions['report']): Promise<number | undefined> {
  if (!fs.existsSync(DNSPERF)) {
    log(`${DNSPERF} is missing (apt-get install dnsperf); DNS figures skipped`);
    return undefined;
  }
  const dns = await DnsDevice.start({ port: 0, emit: () => {} });
  try {
    let n = 0;
    const set = (name: string, type: 'A' | 'AAAA' | 'CNAME' | 'SRV' | 'TXT', value: unknown) =>
      dns.handle({ id: `b-${++n}`, type: 'dns.set', record: { id: `r-${n}`, name, type, value: value as string } });
    for (let i = 0; i < 50; i++) {
      await set(`web${i}.demo.os0.`, 'A', `10.0.${i}.1`);
      await set(`web${i}.demo.os0.`, 'A', `10.0.${i}.2`);
      await set(`web${i}.demo.os0.`, 'AAAA', `fd00::${i + 1}`);
      await set(`_http._tcp.web${i}.demo.os0.`, 'SRV', `10 5 ${20000 + i} web${i}.demo.os0.`);
      await set(`web${i}.demo.os0.`, 'TXT', `replica set ${i}`);
      await set(`www${i}.demo.os0.`, 'CNAME', `web${i}.demo.os0.`);
    }
    const lines: string[] = [];
    for (let i = 0; i < 50; i++) {
      lines.push(`web${i}.demo.os0 A`, `web${i}.demo.os0 AAAA`, `_http._tcp.web${i}.demo.os0 SRV`, `web${i}.demo.os0 TXT`, `www${i}.demo.os0 A`, `nope${i}.demo.os0 A`);
    }
    lines.push('example.com A', 'os0 SOA');
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'queries.txt');
    fs.writeFileSync(file, lines.join('\n') + '\n');
    log(`dnsperf: ${lines.length} distinct questions, ${LOAD_S} s, 1 client, 100 outstanding`);
    const out = await exec(DNSPERF, ['-s', '127.0.0.1', '-p', String(dns.port), '-d', file, '-l', String(LOAD_S), '-c', '1', '-q', '100', '-t', '2'], (LOAD_S + 20) * 1000);
    const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]);
    const lost = /Queries lost:\s+(\d+)/.exec(out)?.[1] ?? '?';
    const latency = /Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1];
    const c = dns.snapshot().counters;
    const ceiling = await udpEchoQps(file);
    report('DNS queries/s over UDP (dnsperf: 1 client, 100 outstanding)', qps, 'q/s', `(${lost} lost; avg latency ${latency ? fmt(Number(latency) * 1000, 2) : '?'} ms; ${fmt(c.cacheHits)} answered from the cache of ${fmt(c.queriesUdp)})`);
    report('UDP echo with no DNS work, same client (what node:dgram allows here)', ceiling, 'q/s', `(the DNS device does ${fmt((qps / ceiling) * 100, 1)}% of it)`);
    return qps;
  } finally {
    await dns.close();
  }
}

/** dnsperf against a bare node:dgram echo that only flips the QR bit: the ceiling for any DNS server on node here. */
async function udpEchoQps(file: string): Promise<number> {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => {
    m[2] |= 0x80;
    echo.send(m, r.port, r.address);
  });
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  try {
    log(`dnsperf against a bare UDP echo, ${LOAD_S} s`);
    const out = await exec(DNSPERF, ['-s', '127.0.0.1', '-p', String(echo.address().port), '-d', file, '-l', String(LOAD_S), '-c', '1', '-q', '100', '-t', '2'], (LOAD_S + 20) * 1000);
    return Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]);
  } finally {
    await new Promise<void>((r) => echo.close(() => r()));
  }
}

/** A node HTTP server in a child process: `ok` to every request, keep-alive unless asked not to. */
async function startBackend(): Promise<{ port: number; child: ChildProcess }> {
  const code = [
    "const http=require('http');",
    "const s=http.createServer((q,r)=>{r.writeHead(200,{'content-type':'text/plain','content-length':2});r.end('ok')});",
    's.keepAliveTimeout=30000;',
    "s.listen(0,'127.0.0.1',()=>console.log(s.address().port));",
  ].join('');
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (b: Buffer) => resolve(Number(String(b).trim())));
    child.once('exit', (c) => reject(new Error(`the HTTP backend exited with ${c}`)));
  });
  return { port, child };
}

async function wrk(port: number, keepAlive: boolean): Promise<{ rps: number; requests: number; errors: string }> {
  const args = ['-t', '1', '-c', String(WRK_CONNECTIONS), '-d', `${WRK_S}s`, ...(keepAlive ? [] : ['-H', 'Connection: close']), `http://127.0.0.1:${port}/`];
  const out = await exec(WRK, args, (WRK_S + 20) * 1000);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const errors = /Socket errors: (.*)/.exec(out)?.[1] ?? 'none';
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1];
  return { rps, requests, errors: non2xx ? `${errors}; ${non2xx} non-2xx` : errors };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The simplest node TCP proxy there is (pipe both ways, Nagle off): the reference for the device. */
async function startPlainPipe(backendPort: number): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: backendPort, noDelay: true });
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, server };
}

async function proxyFigures(report: SuiteOptions['report']): Promise<number | undefined> {
  if (!fs.existsSync(WRK)) {
    log(`${WRK} is missing (apt-get install wrk); proxy figures skipped`);
    return undefined;
  }
  const backend = await startBackend();
  const proxy = new ProxyDevice({ emit: () => {} });
  try {
    const configured = await proxy.handle({
      id: 'bench',
      type: 'proxy.configure',
      proxy: { proxyId: 'bench/web', listen: { host: '127.0.0.1', port: 0 }, backends: [{ host: '127.0.0.1', port: backend.port }], health: { type: 'tcp', intervalMs: 1000 } },
    });
    if (configured.type !== 'configured') throw new Error(`proxy.configure failed: ${JSON.stringify(configured)}`);
    const proxyPort = configured.listen.port;
    const pipe = await startPlainPipe(backend.port);
    const runs = [
      ['directKeep', backend.port, true, 'direct'],
      ['proxyKeep', proxyPort, true, 'through the proxy'],
      ['pipeKeep', pipe.port, true, 'through a bare net pipe'],
      ['directNew', backend.port, false, 'direct'],
      ['proxyNew', proxyPort, false, 'through the proxy'],
    ] as const;
    type Key = (typeof runs)[number][0];
    const rps = Object.fromEntries(runs.map(([k]) => [k, [] as number[]])) as Record<Key, number[]>;
    // This process runs the proxy and the bare pipe and nothing else meanwhile: its CPU time per
    // request is the proxy's cost, a figure that moves less with other load than requests/s.
    const cpuUsPerRequest = Object.fromEntries(runs.map(([k]) => [k, [] as number[]])) as Record<Key, number[]>;
    const errors: string[] = [];
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [key, port, keep, how] of runs) {
          log(`round ${round}/${ROUNDS}: wrk ${keep ? 'keep-alive' : 'Connection: close'} ${how}, ${WRK_S} s`);
          const cpu0 = process.cpuUsage();
          const r = await wrk(port, keep);
          const cpu = process.cpuUsage(cpu0);
          rps[key].push(r.rps);
          cpuUsPerRequest[key].push((cpu.user + cpu.system) / r.requests);
          if (r.errors !== 'none') errors.push(`${key}: ${r.errors}`);
        }
      }
    } finally {
      pipe.server.close();
    }
    // Other load on the machine comes and goes: compare runs of one round (seconds apart), and
    // take the median over the rounds.
    const ratio = (a: Key, b: Key) => median(rps[a].map((x, i) => x / rps[b][i]));
    const keepRatio = ratio('proxyKeep', 'directKeep');
    const note = `(wrk -t1 -c${WRK_CONNECTIONS}, median of ${ROUNDS} runs of ${WRK_S} s)`;
    report('HTTP req/s direct, keep-alive', median(rps.directKeep), 'req/s', note);
    report('HTTP req/s through the proxy, keep-alive', median(rps.proxyKeep), 'req/s', `(${fmt(keepRatio * 100, 1)}% of direct, median of per-round ratios)`);
    report('HTTP req/s through a bare node net pipe, keep-alive', median(rps.pipeKeep), 'req/s', `(${fmt(ratio('pipeKeep', 'directKeep') * 100, 1)}% of direct: the floor any node proxy starts from)`);
    report('HTTP req/s direct, new connection per request', median(rps.directNew), 'req/s', note);
    report('HTTP req/s through the proxy, new connection per request', median(rps.proxyNew), 'req/s', `(${fmt(ratio('proxyNew', 'directNew') * 100, 1)}% of direct)`);
    report('proxy CPU per request, keep-alive', median(cpuUsPerRequest.proxyKeep), 'µs', `(bare pipe ${fmt(median(cpuUsPerRequest.pipeKeep), 1)} µs)`);
    report('proxy CPU per request, new connection per request', median(cpuUsPerRequest.proxyNew), 'µs');
    const snap = proxy.snapshot().proxies[0];
    log(`proxy counters: ${fmt(snap.connectionsTotal)} connections, ${fmt(snap.bytesIn)} bytes in, ${fmt(snap.bytesOut)} out, refused ${snap.refusedOverLimit + snap.refusedNoBackend}`);
    if (errors.length > 0) log(`wrk socket errors: ${errors.join(' | ')}`);
    return keepRatio;
  } finally {
    await proxy.close();
    backend.child.kill('SIGKILL');
  }
}

/** The network half of the agent bench; bench/agent.ts may call it beside the process figures. */
export async function runNet({ report }: Pick<SuiteOptions, 'report'>): Promise<void> {
  const target = (name: string, ok: boolean, note: string): void => report(`target: ${name}`, ok ? 1 : 0, 'pass', note);
  report('host: load average (1 min) at start', os.loadavg()[0], 'load', `(${os.availableParallelism()} CPUs)`);
  const qps = await dnsQps(report);
  const ratio = await proxyFigures(report);
  if (qps !== undefined) target(`DNS ≥ ${fmt(DNS_TARGET_QPS)} queries/s over UDP`, qps >= DNS_TARGET_QPS, `(${fmt(qps)})`);
  if (ratio !== undefined) target(`proxy keep-alive ≥ ${PROXY_TARGET_RATIO * 100}% of direct`, ratio >= PROXY_TARGET_RATIO, `(${fmt(ratio * 100, 1)}%)`);
}

export async function run(opts: SuiteOptions): Promise<void> {
  await runNet(opts);
}
