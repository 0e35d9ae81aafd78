import { TestModel } from 'xstate/graph';
import { instanceMachine } from '../../../machines/index.js';
import { report, LAUNCH_OUTPUT } from '../support/harness.js';

const maxRestarts = Number(process.argv[2] ?? 1);
const maxAttempt = Number(process.argv[3] ?? 1);
const input = { id: 'webui', startupTimeoutMs: 1000, seed: 1, restart: { onCrash: true, baseDelayMs: 10, maxDelayMs: 100, maxRestarts, windowMs: 1e12, resetAfterMs: 5000 } };
const drop = (process.argv[4] ?? '').split(',');
const events0: any[] = [
  { type: 'START' }, { type: 'STOP' }, { type: 'RESTART' }, { type: 'RESET' },
  { type: 'xstate.done.actor.launch', output: LAUNCH_OUTPUT },
  { type: 'xstate.error.actor.launch', error: 'spawn ENOENT' },
  { type: 'HEALTHY' }, { type: 'PROCESS_EXITED', code: 1, signal: null }, { type: 'HEALTH_FAILED', reason: 'timeout' },
  { type: 'xstate.done.actor.terminate', output: report(false) },
  { type: 'xstate.done.actor.terminate', output: report(true) },
  { type: 'xstate.error.actor.terminate', error: 'EPERM' },
];
const events = events0.filter(e => !drop.includes(e.type) && !(drop.includes('survivor') && e.output?.survivors?.length));
import { getStateNodes } from 'xstate/graph';
const afterEvents = getStateNodes(instanceMachine.root).flatMap((n: any) => n.after.map((t: any) => ({ type: t.eventType })));
console.log(afterEvents);
events.push(...afterEvents);
const serialize = (s: any) => { const st = s.matches('stopping'); return JSON.stringify({ v: s.value, d: s.context.desired, r: st ? s.context.stopReason : null, n: s.context.restarts, a: st ? s.context.attempt : 0 }); };
const model = new TestModel(instanceMachine as any, {
  input,
  events: events,
  serializeState: serialize,
  filterEvents: (s: any, e: any) => {
    if (!s.can(e)) return false;
    if (e.type === 'RESTART_WINDOW_EXPIRED') return false;
    if (drop.includes(e.type)) return false;
    if ((e.type === 'xstate.error.actor.terminate' || (e.type === 'xstate.done.actor.terminate' && e.output.survivors.length)) && s.context.attempt >= maxAttempt) return false;
    return true;
  },
} as any);
const adj = model.getAdjacencyMap();
console.log('states', Object.keys(adj).length);
let t = Date.now();
const sp = model.getShortestPaths();
console.log('shortest', sp.length, Date.now() - t);
t = Date.now();
if (process.argv[5] === "noshort") {}
const simple = process.argv[5] === "skip" ? [] as any[] : model.getSimplePaths();
console.log('simple', simple.length, Date.now() - t, 'max len', Math.max(...simple.map(p => p.steps.length)));
if (process.argv[6] === 'list') { for (const k of Object.keys(adj)) { console.log(k, Object.values((adj as any)[k].transitions).map((t: any) => t.event.type).join(' ')); } }
