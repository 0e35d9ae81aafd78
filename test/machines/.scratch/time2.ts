import { instanceModel, dropPrefixPaths, replay, modelInput } from '../support/instance-model.js';
const INTENT_EVENTS = ['START', 'STOP', 'RESTART', 'launched', 'HEALTHY', 'PROCESS_EXITED', 'treeDead', 'survivor', 'after:backoff', 'after:retryStop'];
let t = Date.now();
const p = dropPrefixPaths(instanceModel({ maxRestarts: 1, maxAttempt: 1, events: INTENT_EVENTS }).getSimplePaths({ allowDuplicatePaths: true }));
console.log('gen', p.length, Date.now() - t);
t = Date.now();
for (const path of p) await replay(path as any, modelInput(1));
console.log('replay', Date.now() - t);
