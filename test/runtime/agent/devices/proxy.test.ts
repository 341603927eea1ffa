/**
 * The proxy device with real sockets on 127.0.0.1: backends are TCP servers (some in child
 * processes, to be killed with SIGKILL) that greet each connection with their name, then echo.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeviceEvent, FailedEvent } from '../../../../runtime/agent/devices/device.ts';
import { proxyMetrics, ProxyDevice, type ProxyConfigInput, type ProxyEvent } from '../../../../runtime/agent/devices/proxy/index.ts';

const HOST = '127.0.0.1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A backend in this process: says its name on connect, then echoes. */
async function backend(name: string): Promise<{ port: number; server: net.Server; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.write(`${name}\n`);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  const close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  cleanups.push(close);
  return { port: (server.address() as net.AddressInfo).port, server, close };
}

/** The same backend in a child process, so it can be killed for real. */
async function childBackend(name: string): Promise<{ port: number; child: ChildProcess }> {
  const code = `const net=require('net');const s=net.createServer(c=>{c.on('error',()=>{});c.write(${JSON.stringify(name)}+'\\n');c.pipe(c)});s.listen(0,'${HOST}',()=>console.log(s.address().port))`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (b: Buffer) => resolve(Number(String(b).trim())));
    child.once('exit', () => reject(new Error(`backend ${name} exited`)));
  });
  return { port, child };
}

/** Connects through the proxy and reads the greeting line: which backend took the connection. */
function whoAnswers(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port });
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      got += d;
      if (got.includes('\n')) {
        s.destroy();
        resolve(got.split('\n')[0]);
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed before a greeting (got ${JSON.stringify(got)})`)));
  });
}

/** An open connection through the proxy: its greeting, then echo round trips. */
async function openConn(port: number): Promise<{ name: string; echo(text: string): Promise<string>; socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect({ host: HOST, port });
  socket.setEncoding('utf8');
  let buffered = '';
  let waiter: (() => void) | undefined;
  socket.on('data', (d: string) => {
    buffered += d;
    waiter?.();
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const line = async (): Promise<string> => {
    while (!buffered.includes('\n')) {
      if (socket.destroyed) throw new Error('connection closed');
      await Promise.race([new Promise<void>((r) => (waiter = r)), closed]);
    }
    const at = buffered.indexOf('\n');
    const out = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return out;
  };
  const name = await line();
  return {
    name,
    socket,
    closed,
    echo: async (text: string) => {
      socket.write(text + '\n');
      return line();
    },
  };
}

function newDevice(): { dev: ProxyDevice; events: DeviceEvent[]; waitFor(pred: (e: ProxyEvent) => boolean, from?: number): Promise<ProxyEvent> } {
  const events: DeviceEvent[] = [];
  const waiters: { pred: (e: ProxyEvent) => boolean; resolve: (e: ProxyEvent) => void }[] = [];
  const dev = new ProxyDevice({
    emit: (e) => {
      events.push(e);
      for (const w of [...waiters]) {
        if (e.type !== 'failed' && w.pred(e as ProxyEvent)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e as ProxyEvent);
        }
      }
    },
  });
  cleanups.push(() => dev.close());
  const waitFor = (pred: (e: ProxyEvent) => boolean, from = 0) => {
    const seen = events.slice(from).find((e) => e.type !== 'failed' && pred(e as ProxyEvent));
    if (seen) return Promise.resolve(seen as ProxyEvent);
    return new Promise<ProxyEvent>((resolve) => waiters.push({ pred, resolve }));
  };
  return { dev, events, waitFor };
}

let seq = 0;
async function configure(dev: ProxyDevice, proxy: ProxyConfigInput): Promise<number> {
  const out = await dev.handle({ id: `cfg-${++seq}`, type: 'proxy.configure', proxy });
  if (out.type !== 'configured') throw new Error(`configure failed: ${(out as FailedEvent).error}`);
  return out.listen.port;
}

const healthyAll = (dev: ProxyDevice, proxyId: string, n: number) =>
  dev.snapshot().proxies.find((p) => p.proxyId === proxyId)?.backends.filter((b) => b.health === 'healthy').length === n;

async function until(cond: () => boolean): Promise<void> {
  // Bounded by the test's own timeout; polls, asserts nothing about how long it took.
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}

describe('proxy device', () => {
  it('spreads connections round robin over healthy backends', async () => {
    const { dev } = newDevice();
    const bs = await Promise.all(['a', 'b', 'c'].map((n) => backend(n)));
    const port = await configure(dev, {
      proxyId: 'demo/web',
      listen: { host: HOST, port: 0 },
      backends: bs.map((b, i) => ({ id: 'abc'[i], host: HOST, port: b.port })),
      health: { type: 'tcp', intervalMs: 100 },
    });
    await until(() => healthyAll(dev, 'demo/web', 3));
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) seen.push(await whoAnswers(port));
    const counts = Object.fromEntries(['a', 'b', 'c'].map((n) => [n, seen.filter((s) => s === n).length]));
    expect(counts).toEqual({ a: 10, b: 10, c: 10 });
    // No backend twice in a row: the order turns.
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
    await until(() => dev.snapshot().proxies[0].connectionsActive === 0);
    const snap = dev.snapshot().proxies[0];
    expect(snap.connectionsTotal).toBe(30);
    expect(snap.backends.map((b) => b.connectionsTotal)).toEqual([10, 10, 10]);
    expect(snap.bytesOut).toBe(30 * 2);
  });

  it('stops sending to a killed backend once its health check finds it dead', async () => {
    const { dev, waitFor } = newDevice();
    const live = await childBackend('live');
    const doomed = await childBackend('doomed');
    const port = await configure(dev, {
      proxyId: 'kill',
      listen: { host: HOST, port: 0 },
      backends: [
        { id: 'live', host: HOST, port: live.port },
        { id: 'doomed', host: HOST, port: doomed.port },
      ],
      health: { type: 'tcp', intervalMs: 150, timeoutMs: 100, unhealthyThreshold: 1 },
    });
    await until(() => healthyAll(dev, 'kill', 2));
    expect(new Set(await Promise.all([whoAnswers(port), whoAnswers(port)]))).toEqual(new Set(['live', 'doomed']));
    const dead = new Promise((r) => doomed.child.once('exit', r));
    doomed.child.kill('SIGKILL');
    await dead;
    // The health check, not a client, finds it: no connection is made until it has turned.
    const turned = await waitFor((e) => e.type === 'health' && e.backendId === 'doomed' && e.health !== 'healthy');
    expect(turned).toMatchObject({ health: 'unhealthy', proxyId: 'kill' });
    const before = dev.snapshot().proxies[0].backends.find((b) => b.id === 'doomed')!.connectionsTotal;
    const answers: string[] = [];
    for (let i = 0; i < 12; i++) answers.push(await whoAnswers(port));
    expect(answers.every((a) => a === 'live')).toBe(true);
    expect(dev.snapshot().proxies[0].backends.find((b) => b.id === 'doomed')!.connectionsTotal).toBe(before);
  });

  it('retries another backend when one refuses before its health check has noticed', async () => {
    const { dev } = newDevice();
    const live = await backend('live');
    const doomed = await childBackend('doomed');
    const port = await configure(dev, {
      proxyId: 'retry',
      listen: { host: HOST, port: 0 },
      backends: [
        { id: 'live', host: HOST, port: live.port },
        { id: 'doomed', host: HOST, port: doomed.port },
      ],
      // Checks far apart and a high threshold: only clients meet the dead backend.
      health: { type: 'tcp', intervalMs: 3_600_000, unhealthyThreshold: 100 },
    });
    await until(() => healthyAll(dev, 'retry', 2));
    const dead = new Promise((r) => doomed.child.once('exit', r));
    doomed.child.kill('SIGKILL');
    await dead;
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push(await whoAnswers(port));
    expect(answers).toEqual(Array(6).fill('live'));
    const d = dev.snapshot().proxies[0].backends.find((b) => b.id === 'doomed')!;
    expect(d.connectFailures).toBeGreaterThan(0);
  });

  it('follows an HTTP health check: a backend answering 503 gets no traffic until it answers 200 again', async () => {
    const { dev, events, waitFor } = newDevice();
    let status = 200;
    const servers: http.Server[] = [];
    const start = async (name: string, health: () => number) => {
      const s = http.createServer((req, res) => {
        if (req.url === '/healthz') res.writeHead(health()).end();
        else res.end(name);
      });
      await new Promise<void>((r) => s.listen(0, HOST, r));
      servers.push(s);
      cleanups.push(() => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r()))));
      return (s.address() as net.AddressInfo).port;
    };
    const steady = await start('steady', () => 200);
    const flaky = await start('flaky', () => status);
    const port = await configure(dev, {
      proxyId: 'http',
      listen: { host: HOST, port: 0 },
      backends: [
        { id: 'steady', host: HOST, port: steady },
        { id: 'flaky', host: HOST, port: flaky },
      ],
      // A service's spelling of its health check, as the executor may pass it on.
      health: { http: '/healthz', intervalMs: 100, healthyThreshold: 2, unhealthyThreshold: 2 } as ProxyConfigInput['health'],
    });
    await until(() => healthyAll(dev, 'http', 2));
    const get = () =>
      new Promise<string>((resolve, reject) => {
        http.get({ host: HOST, port, path: '/', agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve(body));
        }).on('error', reject);
      });
    expect(new Set([await get(), await get()])).toEqual(new Set(['steady', 'flaky']));
    status = 503;
    const down = await waitFor((e) => e.type === 'health' && e.backendId === 'flaky' && e.health === 'unhealthy');
    expect((down as { error?: string }).error).toMatch(/503/);
    const during: string[] = [];
    for (let i = 0; i < 6; i++) during.push(await get());
    expect(during).toEqual(Array(6).fill('steady'));
    const mark = events.length;
    status = 200;
    await waitFor((e) => e.type === 'health' && e.backendId === 'flaky' && e.health === 'healthy', mark);
    const after: string[] = [];
    for (let i = 0; i < 4; i++) after.push(await get());
    expect(after.filter((a) => a === 'flaky')).toHaveLength(2);
  });

  it('drains a removed backend: its open connection goes on, new ones go elsewhere, then it is drained', async () => {
    const { dev, waitFor } = newDevice();
    const a = await backend('a');
    const b = await backend('b');
    const config: ProxyConfigInput = {
      proxyId: 'drain',
      listen: { host: HOST, port: 0 },
      backends: [
        { id: 'a', host: HOST, port: a.port },
        { id: 'b', host: HOST, port: b.port },
      ],
      health: { type: 'tcp', intervalMs: 100 },
      drainTimeoutMs: 60_000,
    };
    const port = await configure(dev, config);
    await until(() => healthyAll(dev, 'drain', 2));
    let onA = await openConn(port);
    const others: Awaited<ReturnType<typeof openConn>>[] = [];
    while (onA.name !== 'a') {
      others.push(onA);
      onA = await openConn(port);
    }
    for (const o of others) o.socket.destroy();
    await configure(dev, { ...config, backends: [config.backends[1]] });
    const draining = dev.snapshot().proxies[0].backends.find((x) => x.id === 'a')!;
    expect(draining).toMatchObject({ draining: true, connectionsActive: 1 });
    expect(await onA.echo('still here')).toBe('still here');
    for (let i = 0; i < 4; i++) expect(await whoAnswers(port)).toBe('b');
    onA.socket.end();
    const drained = await waitFor((e) => e.type === 'drained' && e.backendId === 'a');
    expect(drained).toMatchObject({ forced: false, connectionsCut: 0 });
    expect(dev.snapshot().proxies[0].backends.map((x) => x.id)).toEqual(['b']);
  });

  it('cuts what is left of a drain at its timeout', async () => {
    const { dev, waitFor } = newDevice();
    const a = await backend('a');
    const config: ProxyConfigInput = {
      proxyId: 'cut',
      listen: { host: HOST, port: 0 },
      backends: [{ id: 'a', host: HOST, port: a.port }],
      health: { type: 'tcp', intervalMs: 100 },
      drainTimeoutMs: 100,
    };
    const port = await configure(dev, config);
    const conn = await openConn(port);
    expect(conn.name).toBe('a');
    await configure(dev, { ...config, backends: [] });
    const drained = await waitFor((e) => e.type === 'drained' && e.backendId === 'a');
    expect(drained).toMatchObject({ forced: true, connectionsCut: 1 });
    await conn.closed;
  });

  it('carries a half-closed connection to the end and counts its bytes both ways', async () => {
    const { dev } = newDevice();
    const a = await backend('a');
    const port = await configure(dev, { proxyId: 'bytes', listen: { host: HOST, port: 0 }, backends: [{ id: 'a', host: HOST, port: a.port }] });
    const payload = 'x'.repeat(200_000);
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: HOST, port, allowHalfOpen: true });
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
      // Everything sent, then our side closed: the echo must still come back in full.
      s.end(payload);
    });
    expect(got).toBe('a\n' + payload);
    await until(() => dev.snapshot().proxies[0].connectionsActive === 0);
    const snap = dev.snapshot().proxies[0];
    expect(snap.bytesIn).toBe(payload.length);
    expect(snap.bytesOut).toBe(payload.length + 2);
    expect(snap.backends[0]).toMatchObject({ bytesIn: payload.length, bytesOut: payload.length + 2 });
    const text = proxyMetrics(dev.snapshot(), 'm1');
    expect(text).toContain(`os0_proxy_bytes_total{machine="m1",proxy="bytes",direction="in"} ${payload.length}`);
    expect(text).toContain('os0_proxy_backend_connections_total{machine="m1",proxy="bytes",backend="a"} 1');
  });

  it('bounds the connections it holds', async () => {
    const { dev } = newDevice();
    const a = await backend('a');
    const port = await configure(dev, { proxyId: 'max', listen: { host: HOST, port: 0 }, backends: [{ host: HOST, port: a.port }], connectionsMax: 2 });
    const c1 = await openConn(port);
    const c2 = await openConn(port);
    await expect(whoAnswers(port)).rejects.toThrow(/closed before a greeting|ECONNRESET/);
    expect(dev.snapshot().proxies[0].refusedOverLimit).toBe(1);
    c1.socket.destroy();
    await until(() => dev.snapshot().proxies[0].connectionsActive < 2);
    expect(await whoAnswers(port)).toBe('a');
    c2.socket.destroy();
  });

  it('moves to a new address: the old listener stops taking connections, the ones it had go on', async () => {
    const { dev } = newDevice();
    const a = await backend('a');
    const config: ProxyConfigInput = { proxyId: 'move', listen: { host: HOST, port: 0 }, backends: [{ id: 'a', host: HOST, port: a.port }] };
    const oldPort = await configure(dev, config);
    const open = await openConn(oldPort);
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, HOST, r));
    const newPort = (free.address() as net.AddressInfo).port;
    await new Promise((r) => free.close(r));
    expect(await configure(dev, { ...config, listen: { host: HOST, port: newPort } })).toBe(newPort);
    expect(await whoAnswers(newPort)).toBe('a');
    await expect(whoAnswers(oldPort)).rejects.toThrow(/ECONNREFUSED/);
    expect(await open.echo('still')).toBe('still');
    expect(dev.snapshot().stopping.map((p) => p.listen.port)).toEqual([oldPort]);
    open.socket.end();
    await until(() => dev.snapshot().stopping.length === 0);
    expect(dev.snapshot().proxies.map((p) => p.listen.port)).toEqual([newPort]);
  });

  it('answers commands idempotently, refuses bad ones in one line, and stops listening on remove', async () => {
    const { dev, events } = newDevice();
    const a = await backend('a');
    const config: ProxyConfigInput = { proxyId: 'cmd', listen: { host: HOST, port: 0 }, backends: [{ host: HOST, port: a.port }] };
    const first = await dev.handle({ id: 'same', type: 'proxy.configure', proxy: config });
    expect(first).toMatchObject({ type: 'configured', commandId: 'same', changed: true });
    expect(await dev.handle({ id: 'same', type: 'proxy.configure', proxy: config })).toEqual(first);
    const port = (first as { listen: { port: number } }).listen.port;
    const again = await dev.handle({ id: 'other', type: 'proxy.configure', proxy: { ...config, listen: { host: HOST, port } } });
    expect(again).toMatchObject({ type: 'configured', changed: false, listen: { port } });
    expect(dev.snapshot().proxies).toHaveLength(1);

    const bad: [unknown, RegExp][] = [
      [{ ...config, proxyId: '' }, /proxyId/],
      [{ ...config, listen: { port: 70000 } }, /listen.port/],
      [{ ...config, backends: [{ host: HOST, port: 0 }] }, /backends\[0\]\.port/],
      [{ ...config, health: { type: 'udp' } }, /health.type/],
      [{ ...config, health: { type: 'http', path: 'healthz' } }, /health.path/],
      [{ ...config, backends: [{ host: HOST, port: 1 }, { host: HOST, port: 1 }] }, /appears twice/],
    ];
    for (const [proxy, message] of bad) {
      const out = await dev.handle({ id: `bad-${++seq}`, type: 'proxy.configure', proxy: proxy as ProxyConfigInput });
      expect(out).toMatchObject({ type: 'failed', code: 'invalid' });
      expect((out as FailedEvent).error).toMatch(message);
      expect((out as FailedEvent).error).not.toContain('\n');
    }
    const taken = await dev.handle({ id: 'taken', type: 'proxy.configure', proxy: { ...config, proxyId: 'other', listen: { host: HOST, port } } });
    expect(taken).toMatchObject({ type: 'failed', code: 'conflict' });
    const blocker = await backend('blocker');
    const inUse = await dev.handle({ id: 'in-use', type: 'proxy.configure', proxy: { ...config, proxyId: 'third', listen: { host: HOST, port: blocker.port } } });
    expect(inUse).toMatchObject({ type: 'failed', code: 'host' });
    expect((inUse as FailedEvent).error).toMatch(/in use; pick another port/);

    expect(await dev.handle({ id: 'rm', type: 'proxy.remove', proxyId: 'cmd' })).toMatchObject({ type: 'removed', existed: true });
    await expect(whoAnswers(port)).rejects.toThrow(/ECONNREFUSED/);
    expect(await dev.handle({ id: 'rm2', type: 'proxy.remove', proxyId: 'cmd' })).toMatchObject({ type: 'removed', existed: false });
    expect(events.filter((e) => e.commandId === 'same')).toHaveLength(2);
    const snap = dev.snapshot();
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    await dev.close();
    expect(await dev.handle({ id: 'late', type: 'proxy.remove', proxyId: 'cmd' })).toMatchObject({ type: 'failed', code: 'closed' });
  });
});
