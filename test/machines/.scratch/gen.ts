import fs from 'node:fs';
import { supervisorMachine, instanceMachine, watchdogMachine } from '../../../machines/index.js';
import { machinePage } from '../../../scripts/machine-diagrams/mermaid.js';
for (const [n, m] of [['instance', instanceMachine], ['watchdog', watchdogMachine], ['supervisor', supervisorMachine]] as const) {
  fs.writeFileSync(`/tmp/mm/${n}.md`, machinePage(m as any, `machines/${n}.machine.ts`));
}
