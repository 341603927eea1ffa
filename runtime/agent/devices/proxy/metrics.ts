/**
 * The proxy device's counters in the Prometheus text format, for whoever serves `/metrics`.
 */
import type { BalancerSnapshot } from './balancer.ts';

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function proxyMetrics(snapshot: { proxies: BalancerSnapshot[] }, machine?: string): string {
  const lines: string[] = [];
  const m = machine === undefined ? '' : `machine="${esc(machine)}",`;
  const metric = (name: string, type: 'counter' | 'gauge', help: string, rows: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) lines.push(`${name}{${m}${labels}} ${value}`);
  };
  const ps = snapshot.proxies;
  const p = (b: BalancerSnapshot) => `proxy="${esc(b.proxyId)}"`;
  const backends = ps.flatMap((b) => b.backends.map((be) => ({ labels: `${p(b)},backend="${esc(be.id)}"`, be })));
  metric('os0_proxy_connections_active', 'gauge', 'Client connections open through the load balancer.', ps.map((b) => [p(b), b.connectionsActive]));
  metric('os0_proxy_connections_total', 'counter', 'Client connections accepted.', ps.map((b) => [p(b), b.connectionsTotal]));
  metric('os0_proxy_refused_total', 'counter', 'Client connections closed at once, by reason.', ps.flatMap((b): [string, number][] => [
    [`${p(b)},reason="limit"`, b.refusedOverLimit],
    [`${p(b)},reason="no-backend"`, b.refusedNoBackend],
  ]));
  metric('os0_proxy_bytes_total', 'counter', 'Bytes from clients (in) and to clients (out).', ps.flatMap((b): [string, number][] => [
    [`${p(b)},direction="in"`, b.bytesIn],
    [`${p(b)},direction="out"`, b.bytesOut],
  ]));
  metric('os0_proxy_backend_up', 'gauge', '1 when the backend passes its health checks, 0 when not or not checked yet.', backends.map(({ labels, be }) => [labels, be.health === 'healthy' ? 1 : 0]));
  metric('os0_proxy_backend_connections_active', 'gauge', 'Connections open to the backend.', backends.map(({ labels, be }) => [labels, be.connectionsActive]));
  metric('os0_proxy_backend_connections_total', 'counter', 'Connections made or tried to the backend.', backends.map(({ labels, be }) => [labels, be.connectionsTotal]));
  metric('os0_proxy_backend_connect_failures_total', 'counter', 'Connections to the backend that could not be made.', backends.map(({ labels, be }) => [labels, be.connectFailures]));
  metric('os0_proxy_backend_bytes_total', 'counter', 'Bytes to the backend (in) and from it (out).', backends.flatMap(({ labels, be }): [string, number][] => [
    [`${labels},direction="in"`, be.bytesIn],
    [`${labels},direction="out"`, be.bytesOut],
  ]));
  return lines.join('\n') + '\n';
}
