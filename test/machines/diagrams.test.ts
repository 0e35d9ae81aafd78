// The generated diagrams: every state and every transition of each machine is drawn, and the committed pages in
// docs/machines are exactly what `npm run machines:diagrams` generates.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import { instanceMachine, supervisorMachine, watchdogMachine } from '../../machines/index.js';
import { findMachineFiles, globToRegExp, readStatelyConfig } from '../../scripts/machine-diagrams/config.js';
import { generateDiagrams } from '../../scripts/machine-diagrams/generate.js';
import { describeMachine } from '../../scripts/machine-diagrams/mermaid.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const machines: AnyStateMachine[] = [instanceMachine, watchdogMachine, supervisorMachine];

interface Node {
  key: string;
  path: string[];
  type: string;
  states: Record<string, Node>;
  transitions: Map<string, Array<{ eventType: string; target?: Node[] }>>;
  always?: Array<{ eventType: string; target?: Node[] }>;
}

// Every state node and every transition, read from the machine independently of the generator.
function walk(machine: AnyStateMachine) {
  const states: Node[] = [];
  const transitions: Array<{ source: Node; eventType: string; targets: Node[] }> = [];
  const visit = (node: Node): void => {
    for (const t of [...[...node.transitions.values()].flat(), ...(node.always ?? [])]) {
      transitions.push({ source: node, eventType: t.eventType, targets: t.target ?? [] });
    }
    for (const child of Object.values(node.states)) {
      states.push(child);
      visit(child);
    }
  };
  visit(machine.root as unknown as Node);
  return { states, transitions };
}

const idOf = (path: string[]): string => path.join('_');
// The word a reader looks for on the arrow: the event, the delay name, the invoked actor, or `always`.
const keyword = (eventType: string): string => {
  if (eventType === '') return 'always';
  if (eventType === 'xstate.error.actor.*') return 'any child error';
  if (eventType.startsWith('xstate.done.state.')) return 'all regions done';
  const parts = eventType.split('.');
  if (eventType.startsWith('xstate.after.')) return `after ${parts[2]}`;
  if (eventType.startsWith('xstate.done.actor.')) return `${parts.slice(3).join('.')} done`;
  if (eventType.startsWith('xstate.error.actor.')) return `${parts.slice(3).join('.')} error`;
  return eventType;
};

describe('machine diagrams', () => {
  for (const machine of machines) {
    test(`every state and every transition of "${machine.id}" is drawn`, () => {
      const { mermaid, edges } = describeMachine(machine);
      const lines = mermaid.split('\n').map((line) => line.trim());
      expect(lines[0]).toBe('stateDiagram-v2');
      const { states, transitions } = walk(machine);
      expect(states.length).toBeGreaterThan(3);
      for (const state of states) {
        expect(lines.some((line) => line.startsWith(`state "${state.key}`) && line.includes(` as ${idOf(state.path)}`))).toBe(true);
      }
      const arrows = lines.filter((line) => line.includes(' --> ') && !line.includes('[*]'));
      let drawnLabels = 0;
      for (const arrow of arrows) drawnLabels += (arrow.split(' : ')[1] ?? '').split('<br>').length;
      const expectedLabels = transitions.reduce((sum, t) => sum + Math.max(1, t.targets.length), 0);
      expect(drawnLabels).toBe(expectedLabels);
      expect(edges).toHaveLength(expectedLabels);

      for (const t of transitions) {
        const composite = t.source.type === 'compound' || t.source.type === 'parallel';
        const isRoot = t.source.path.length === 0;
        const anyId = isRoot ? 'any_state' : `${idOf(t.source.path)}__any`;
        const ends =
          t.targets.length === 0
            ? [[composite || isRoot ? anyId : idOf(t.source.path), composite || isRoot ? anyId : idOf(t.source.path)]]
            : t.targets.map((target) => [isRoot ? 'any_state' : idOf(t.source.path), idOf(target.path)]);
        for (const [from, to] of ends) {
          const arrow = arrows.find((line) => line.startsWith(`${from} --> ${to} : `));
          expect(arrow, `${t.source.path.join('.') || '(root)'} ${t.eventType} → ${to}`).toBeDefined();
          const labels = (arrow as string).split(' : ')[1]?.split('<br>') ?? [];
          expect(labels.some((label) => label.startsWith(keyword(t.eventType)))).toBe(true);
        }
      }
    });
  }

  test('every way out of the instance\'s stopping state is guarded by treeConfirmedDead', () => {
    const leaving = describeMachine(instanceMachine).edges.filter(
      (edge) => edge.definedOn.startsWith('stopping') && edge.target !== null && !edge.target.startsWith('stopping'),
    );
    expect(leaving.map((edge) => edge.target).sort()).toEqual(['crashed', 'idle', 'spawning']);
    for (const edge of leaving) expect(edge.guard).toContain('treeConfirmedDead');
  });

  test('stately.config.json finds exactly the three machine files', () => {
    const config = readStatelyConfig(root);
    expect(config).toMatchObject({ defaultXStateVersion: 5, diagrams: { outDir: 'docs/machines' } });
    expect(findMachineFiles(root, config)).toEqual([
      'machines/instance.machine.ts',
      'machines/supervisor.machine.ts',
      'machines/watchdog.machine.ts',
    ]);
  });

  test('globs: ** spans folders, * stays within one', () => {
    const re = globToRegExp('machines/**/*.machine.ts');
    expect(re.test('machines/instance.machine.ts')).toBe(true);
    expect(re.test('machines/deep/er/x.machine.ts')).toBe(true);
    expect(re.test('machines/instance.machine.tsx')).toBe(false);
    expect(re.test('src/machines/x.machine.ts')).toBe(false);
    expect(globToRegExp('**/*.test.*').test('test/machines/a.test.ts')).toBe(true);
  });

  test('the committed pages in docs/machines are what the generator writes (run npm run machines:diagrams)', async () => {
    const pages = await generateDiagrams(root);
    expect(pages.map((page) => page.path).sort()).toEqual([
      'docs/machines/instance.md',
      'docs/machines/supervisor.md',
      'docs/machines/watchdog.md',
    ]);
    for (const page of pages) {
      expect(page.content).toContain('```mermaid\nstateDiagram-v2\n');
      expect(readFileSync(join(root, page.path), 'utf8'), page.path).toBe(page.content);
    }
  });
});
