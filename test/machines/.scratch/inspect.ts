import { supervisorMachine, instanceMachine, watchdogMachine } from '../../../machines/index.js';
const walk = (node: any, depth = 0) => {
  console.log(' '.repeat(depth*2) + node.key, node.type, 'initial:', node.initial?.target?.map((t: any) => t.id), 'always:', node.always?.length ?? 0);
  for (const [ev, ts] of node.transitions) for (const t of ts) console.log(' '.repeat(depth*2+2) + ev, '->', t.target?.map((x: any) => x.id) ?? '(none)', 'guard', typeof t.guard === 'function' ? `fn:${t.guard.name}:${JSON.stringify(Object.keys(t.guard))} ${JSON.stringify(t.guard.guards)}` : JSON.stringify(t.guard), 'actions', JSON.stringify(t.actions.map((a: any) => typeof a === 'string' ? a : a.type ?? a.name)), 'reenter', t.reenter);
  for (const t of node.always ?? []) console.log(' '.repeat(depth*2+2) + 'always', '->', t.target?.map((x: any) => x.id), JSON.stringify(t.guard));
  for (const c of Object.values(node.states)) walk(c, depth + 1);
};
walk(instanceMachine.root);
walk(supervisorMachine.root);
walk(watchdogMachine.root);
