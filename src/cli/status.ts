// `warden status`: asks a running `warden run` (found through <stateDir>/server.json) what it supervises.
import { join } from 'node:path';
import { identityHoldsNow } from '../process/identity.js';
import { isLoopbackUrl } from '../server/loopback.js';
import type { SupervisorStatus } from '../runtime/supervisor.js';
import { CliError, EXIT } from './exit.js';
import { createOutput } from './output.js';
import type { Output } from './output.js';
import { readServerInfo, resolveTarget } from './state.js';

export interface StatusOptions {
  config?: string;
  stateDir?: string;
  json?: boolean;
}

// Fetches GET /api/status and prints it; exit 0 when a `warden run` answered.
export async function statusCommand(options: StatusOptions): Promise<number> {
  const target = await resolveTarget(options);
  const { stateDir } = target;
  const hint = target.from === 'default' ? ' (looked in ./.warden; pass --config or --state-dir)' : '';
  const info = readServerInfo(stateDir);
  if (info === undefined) throw new CliError(`no \`warden run\` is serving ${stateDir}: it has no server.json${hint}`, EXIT.unavailable);
  if (info.pid !== undefined && !identityHoldsNow({ pid: info.pid, startTime: undefined })) {
    throw new CliError(`nothing runs for ${stateDir}: the \`warden run\` that served ${info.url} (pid ${info.pid}) is gone`, EXIT.unavailable);
  }
  if (info.token === undefined) throw new CliError(`cannot ask ${info.url}: no token in ${join(stateDir, 'token')}`, EXIT.unavailable);
  // The token goes only to a loopback address: a server.json naming another host was not written by `warden run`.
  if (!isLoopbackUrl(info.url)) {
    throw new CliError(`refusing to send the token to ${JSON.stringify(info.url)} (from ${join(stateDir, 'server.json')}): "url" must be http:// to a loopback address (127.0.0.1 or [::1])`, EXIT.failure);
  }

  let response: Response;
  try {
    response = await fetch(`${info.url}/api/status`, {
      headers: { authorization: `Bearer ${info.token}`, accept: 'application/json' },
      signal: AbortSignal.timeout(5000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new CliError(`cannot reach the \`warden run\` at ${info.url}${info.pid === undefined ? '' : ` (pid ${info.pid})`}: ${cause}`, EXIT.unavailable);
  }
  const text = await response.text();
  if (response.status === 401 || response.status === 403) {
    throw new CliError(`${info.url} refused the token in ${join(stateDir, 'token')} (HTTP ${response.status}); was the token file replaced after \`warden run\` started?`, EXIT.failure);
  }
  if (!response.ok) throw new CliError(`${info.url}/api/status answered HTTP ${response.status}: ${text.slice(0, 200)}`, EXIT.failure);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CliError(`${info.url}/api/status did not answer JSON`, EXIT.failure);
  }
  const out = createOutput();
  if (options.json === true) {
    out.json(body);
    return EXIT.ok;
  }
  const status = unwrap(body);
  if (status === undefined) throw new CliError(`${info.url}/api/status answered an unexpected shape (no "instances" list)`, EXIT.failure);
  printStatus(out, status, info.url, info.pid);
  return EXIT.ok;
}

// The status object, whether the API sends it bare or as `{ status: … }`.
function unwrap(body: unknown): SupervisorStatus | undefined {
  const candidate = (body as { status?: unknown } | null)?.status ?? body;
  return Array.isArray((candidate as { instances?: unknown } | null)?.instances) ? (candidate as SupervisorStatus) : undefined;
}

function printStatus(out: Output, status: SupervisorStatus, url: string, pid: number | undefined): void {
  const { style } = out;
  const level = status.watchdog?.level ?? 'ok';
  const colour = level === 'ok' ? style.green : level === 'warning' ? style.yellow : style.red;
  const counts = status.watchdog?.counts;
  out.line(style.bold(`Warden at ${url}`) + (pid === undefined ? '' : style.dim(`  (pid ${pid})`)));
  out.line(
    `watchdog  ${colour(level)}` +
      (counts ? `  python ${counts.python} · shell ${counts.shell} · total ${counts.total} · stale ${counts.stale} · foreign ${counts.foreign}` : '  (no sample yet)') +
      (status.holdRestarts ? style.red('  restarts held after an emergency (reset to release)') : ''),
  );
  out.line('');
  const rows = status.instances.map((instance) => [
    instance.id,
    instance.state,
    instance.detail ?? instance.state,
    String(instance.shellPid ?? '-'),
    String(instance.pythonPid ?? '-'),
    String(instance.counts?.python ?? '-'),
    String(instance.counts?.shell ?? '-'),
    String(instance.restarts),
    // A server from an older Warden may not send these: a dash, not a crash.
    instance.profile ?? '-',
    String(instance.port ?? '-'),
    instance.ready === undefined ? '-' : instance.ready ? 'yes' : 'no',
    instance.containment?.backend ?? '-',
    instance.lastError ?? '',
  ]);
  const header = ['INSTANCE', 'STATE', 'DETAIL', 'SHELL', 'PYTHON', 'PY#', 'SH#', 'RESTARTS', 'PROFILE', 'PORT', 'READY', 'CONTAINMENT', 'LAST ERROR'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const format = (row: string[]): string => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd();
  out.line(style.bold(format(header)));
  for (const row of rows) out.line(format(row));
  // Why each backend was chosen (and the live launch's cgroup): too long for a column, and what an operator asks.
  const contained = status.instances.filter((instance) => instance.containment != null);
  if (contained.length > 0) out.line('');
  for (const instance of contained) {
    const { backend, reason, cgroup } = instance.containment ?? { backend: '-', reason: '', cgroup: null };
    out.line(`${instance.id} containment ${style.bold(backend)}: ${reason}` + (cgroup ? style.dim(`  (cgroup ${cgroup})`) : ''));
  }
}
