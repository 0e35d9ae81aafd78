// The HTTP health probe: one GET with a timeout; any 2xx is healthy, everything else says why not.
/** The outcome of one probe. */
export interface ProbeResult {
  ok: boolean;
  status?: number;
  /** Why the probe failed, in words a log reader understands. */
  reason?: string;
  durationMs: number;
}

// Probes `url` once; never throws.
export async function probeHealth(url: string, timeoutMs: number): Promise<ProbeResult> {
  const started = performance.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { connection: 'close' } });
    await response.body?.cancel();
    const durationMs = performance.now() - started;
    if (response.ok) return { ok: true, status: response.status, durationMs };
    return { ok: false, status: response.status, reason: `HTTP ${response.status} from ${url}`, durationMs };
  } catch (error) {
    const durationMs = performance.now() - started;
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') return { ok: false, reason: `no answer from ${url} within ${timeoutMs} ms`, durationMs };
    const cause = (error as { cause?: { code?: string } }).cause;
    return { ok: false, reason: `${url}: ${cause?.code ?? (error as Error).message}`, durationMs };
  }
}

// Posts to a URL and ignores the answer (the WebUI's server-stop); resolves false when it could not be delivered.
export async function postQuietly(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(timeoutMs), headers: { connection: 'close' } });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}
