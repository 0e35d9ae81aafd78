// Loopback checks: where the control server may listen, and which Host and Origin headers it answers (DNS rebinding).
import { isIPv4, isIPv6 } from 'node:net';

// Whether an address or host name is loopback only: 127.0.0.0/8, ::1 (or its IPv4-mapped form), localhost.
export function isLoopbackHost(host: string): boolean {
  const name = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (name === 'localhost') return true;
  if (isIPv4(name)) return name.startsWith('127.');
  const address = name.replace(/%.*$/, '');
  if (!isIPv6(address)) return false;
  const normal = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return normal === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(normal);
}

// The `host:port` values a request may name: the loopback names plus the bound address, all on the bound port.
export function allowedAuthorities(boundHost: string, port: number): Set<string> {
  const bound = isIPv6(boundHost) ? `[${boundHost.toLowerCase()}]` : boundHost.toLowerCase();
  return new Set(['127.0.0.1', 'localhost', '[::1]', bound].map((name) => `${name}:${port}`));
}

// Whether a Host header names this server by a loopback name; anything else may be a DNS-rebinding page.
export function isAllowedHostHeader(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  return header !== undefined && allowed.has(header.trim().toLowerCase());
}

// Whether an Origin header (sent by browsers) is this server's own origin; an absent header is a non-browser client.
export function isAllowedOrigin(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (header === undefined) return true;
  const match = /^http:\/\/([^/]+)$/i.exec(header.trim());
  return match?.[1] !== undefined && allowed.has(match[1].toLowerCase());
}

// Whether a client may send the API token to `url`: plain http to a literal loopback address (127.0.0.0/8, ::1),
// no credentials in it. A server.json pointing anywhere else (edited, or planted) must not receive the token;
// `localhost` is refused too, since a hosts file can point it elsewhere.
export function isLoopbackUrl(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'http:' || parsed.username !== '' || parsed.password !== '') return false;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  return (isIPv4(host) || isIPv6(host)) && isLoopbackHost(host);
}
