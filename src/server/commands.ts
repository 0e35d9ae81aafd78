// Instance commands over HTTP: validated up front (404/409 before anything is sent), then accepted (202) or awaited.
import { filter, firstValueFrom, fromEvent, mergeMap, takeUntil, throwError } from 'rxjs';
import { ShutDownError, StartError, UnknownInstanceError, WardenError } from '../errors.js';
import type { StartOverrides } from '../profiles.js';
import type { InstanceStatus, Supervisor } from '../runtime/supervisor.js';
import { HttpError } from './respond.js';

/** The commands `POST /api/instances/:id/:action` accepts. */
export const INSTANCE_ACTIONS = ['start', 'stop', 'restart', 'reset'] as const;
/** One of INSTANCE_ACTIONS. */
export type InstanceAction = (typeof INSTANCE_ACTIONS)[number];

/** How a command is run: `wait` answers with the result instead of 202; `timeoutMs` bounds a waited stop. */
export interface CommandOptions {
  wait: boolean;
  timeoutMs?: number;
  /** start/restart: `{ args }` or `{ launchProfile }` for this start. */
  overrides?: StartOverrides;
  /** Aborted when the client hangs up: a waited command stops waiting (the command itself goes on). */
  signal?: AbortSignal;
}

/** The client of a waited command hung up; nobody is left to answer. */
export class ClientGoneError extends WardenError {
  constructor() {
    super('CLIENT_GONE', 'The client closed the connection before the command finished; it goes on, unanswered.');
  }
}

let waiting = 0;
// How many waited commands hold a subscription right now (tests: a hung-up client must bring it back to 0).
export function pendingWaits(): number {
  return waiting;
}

// Resolves with `work`, or rejects with ClientGoneError as soon as `signal` aborts (the work is left to finish).
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) return Promise.reject(new ClientGoneError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new ClientGoneError());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** What a command answers: 202 `{ accepted }`, or 200 with the instance (and the termination report of a stop). */
export interface CommandReply {
  status: 200 | 202;
  body: Record<string, unknown>;
}

const MAX_TIMEOUT_MS = 2_147_483_647;
/** Limits of a start's `args` (the body itself is at most 16 KiB). */
const MAX_ARGS = 256;

// The body fields each action knows.
function knownFields(action: InstanceAction): string[] {
  if (action === 'stop') return ['wait', 'timeoutMs'];
  if (action === 'start' || action === 'restart') return ['wait', 'args', 'launchProfile'];
  return ['wait'];
}

// `args` (an array of strings) or `launchProfile` (a name), never both.
function readOverrides(body: Record<string, unknown>): StartOverrides | undefined {
  const { args, launchProfile } = body;
  if (args !== undefined && launchProfile !== undefined) {
    throw new HttpError(400, 'MALFORMED_BODY', 'Give either "args" or "launchProfile", not both.');
  }
  if (args !== undefined) {
    if (!Array.isArray(args) || args.length > MAX_ARGS || !args.every((arg) => typeof arg === 'string' && !arg.includes('\0'))) {
      throw new HttpError(400, 'MALFORMED_BODY', `args must be an array of at most ${MAX_ARGS} strings without NUL (got ${JSON.stringify(args).slice(0, 80)}).`);
    }
    return { args: args as string[] };
  }
  if (launchProfile !== undefined) {
    if (typeof launchProfile !== 'string' || launchProfile === '') {
      throw new HttpError(400, 'MALFORMED_BODY', `launchProfile must be a non-empty string (got ${JSON.stringify(launchProfile)}).`);
    }
    return { launchProfile };
  }
  return undefined;
}

// Reads `wait` and `timeoutMs` from the query string and the JSON body (the body wins); unknown body fields are a 400.
export function commandOptions(action: InstanceAction, query: URLSearchParams, body: Record<string, unknown>): CommandOptions {
  const known = knownFields(action);
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) throw new HttpError(400, 'MALFORMED_BODY', `Unknown field "${key}" for ${action} (known: ${known.join(', ')}).`);
  }
  const options: CommandOptions = { wait: false };
  const overrides = action === 'start' || action === 'restart' ? readOverrides(body) : undefined;
  if (overrides !== undefined) options.overrides = overrides;
  const waitQuery = query.get('wait');
  if (waitQuery !== null) {
    if (!['', '1', 'true', '0', 'false'].includes(waitQuery)) throw new HttpError(400, 'BAD_REQUEST', `wait must be 1, true, 0 or false (got "${waitQuery}").`);
    options.wait = waitQuery === '' || waitQuery === '1' || waitQuery === 'true';
  }
  if (body.wait !== undefined) {
    if (typeof body.wait !== 'boolean') throw new HttpError(400, 'MALFORMED_BODY', `wait must be true or false (got ${JSON.stringify(body.wait)}).`);
    options.wait = body.wait;
  }
  const timeout = body.timeoutMs ?? (action === 'stop' ? (query.get('timeoutMs') ?? undefined) : undefined);
  if (timeout !== undefined) {
    const value = typeof timeout === 'string' && /^\d+$/.test(timeout) ? Number(timeout) : timeout;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMEOUT_MS) {
      throw new HttpError(400, 'BAD_REQUEST', `timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS} (got ${JSON.stringify(timeout)}).`);
    }
    options.timeoutMs = value;
  }
  return options;
}

// Runs one command; refusals (unknown id, held restarts, a failed instance, shut down) throw before anything is sent.
export async function runInstanceCommand(
  supervisor: Supervisor,
  id: string,
  action: InstanceAction,
  options: CommandOptions,
  shutDown: boolean,
): Promise<CommandReply> {
  const status = supervisor.status();
  const instance = status.instances.find((entry) => entry.id === id);
  if (instance === undefined) throw new UnknownInstanceError(id, status.instances.map((entry) => entry.id));
  if (shutDown) throw new WardenError('SHUT_DOWN', 'The supervisor is shutting down or has shut down; it takes no more commands.');
  if (action === 'reset') {
    supervisor.reset(id);
    return { status: 200, body: { instance: instanceStatus(supervisor, id) } };
  }
  const launchProfile = options.overrides?.launchProfile;
  const profiles = supervisor.config.instances.find((entry) => entry.id === id)?.launchProfiles ?? {};
  if (launchProfile !== undefined && !Object.hasOwn(profiles, launchProfile)) {
    const names = Object.keys(profiles);
    throw new HttpError(400, 'UNKNOWN_LAUNCH_PROFILE', `Unknown launch profile "${launchProfile}" for "${id}" (known: ${names.length > 0 ? names.join(', ') : 'none'}).`, { launchProfile, known: names });
  }
  if (action === 'start' && options.overrides !== undefined && (instance.state === 'running' || instance.state === 'spawning')) {
    throw new HttpError(409, 'ALREADY_RUNNING', `Cannot start "${id}" with other arguments: it is already ${instance.state}. Use POST /api/instances/${id}/restart with the same body.`);
  }
  if (action !== 'stop') {
    if (status.holdRestarts) {
      throw new WardenError('RESTARTS_HELD', `Cannot ${action} "${id}": restarts are held after an emergency. POST /api/reset (no instance) releases the hold.`);
    }
    if (instance.state === 'failed') {
      throw new WardenError('INSTANCE_FAILED', `Cannot ${action} "${id}": it is failed (${instance.lastError ?? 'restart budget spent'}). POST /api/instances/${id}/reset first.`);
    }
  }
  const work = dispatch(supervisor, id, action, instance.state, options);
  if (!options.wait) {
    // The outcome reaches clients as events (transitions, alerts); nobody awaits this promise.
    work.catch(() => undefined);
    return { status: 202, body: { accepted: true, instance: id, action } };
  }
  waiting += 1;
  try {
    return { status: 200, body: await unlessAborted(work, options.signal) };
  } finally {
    waiting -= 1;
    // Left to finish on its own when the client is gone; its outcome still reaches clients as events.
    work.catch(() => undefined);
  }
}

async function dispatch(
  supervisor: Supervisor,
  id: string,
  action: 'start' | 'stop' | 'restart',
  state: InstanceStatus['state'],
  options: CommandOptions,
): Promise<Record<string, unknown>> {
  if (action === 'stop') {
    const report = await supervisor.stop(id, options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
    return { instance: instanceStatus(supervisor, id), report };
  }
  const overrides = options.overrides;
  // From idle, a restart is a start (nothing to stop).
  if (state === 'idle') return { instance: await supervisor.start(id, overrides) };
  // A crashed instance waits out its backoff; START is ignored there, RESTART skips the wait. See relaunchCrashed.
  // With overrides, supervisor.restart() records them first (it also relaunches a crashed instance).
  if (state === 'crashed') return { instance: overrides === undefined ? await relaunchCrashed(supervisor, id, options.signal) : await supervisor.restart(id, overrides) };
  return { instance: action === 'start' ? await supervisor.start(id, overrides) : await supervisor.restart(id, overrides) };
}

// Sends RESTART to a crashed instance and resolves when it runs again (rejects if it crashes or fails on the way).
// supervisor.start() rejects at once in `crashed` and supervisor.restart() waits for a `stopping` that never comes.
async function relaunchCrashed(supervisor: Supervisor, id: string, signal?: AbortSignal): Promise<InstanceStatus> {
  // A hung-up client releases this subscription at once (it would otherwise live until the next transition).
  const events$ = signal === undefined ? supervisor.events$ : supervisor.events$.pipe(takeUntil(fromEvent(signal, 'abort')));
  const outcome = firstValueFrom(
    events$.pipe(
      filter((event) => event.type === 'transition' && event.instance === id && event.from !== event.to),
      mergeMap((event) => {
        if (event.type !== 'transition') return [];
        if (event.to === 'running') return [instanceStatus(supervisor, id)];
        if (event.to === 'crashed' || event.to === 'failed' || event.to === 'idle') {
          const reason = instanceStatus(supervisor, id).lastError ?? `it went ${event.to}`;
          return throwError(() => new StartError(id, event.to, reason));
        }
        return [];
      }),
    ),
    { defaultValue: undefined },
  );
  supervisor.actor.send({ type: 'RESTART', id });
  const instance = await outcome;
  // The event stream completes only at shutdown.
  if (instance === undefined) throw new ShutDownError();
  return instance;
}

function instanceStatus(supervisor: Supervisor, id: string): InstanceStatus {
  const instance = supervisor.status().instances.find((entry) => entry.id === id);
  if (instance === undefined) throw new UnknownInstanceError(id, supervisor.status().instances.map((entry) => entry.id));
  return instance;
}
