// Turns an XState v5 machine definition into a Mermaid stateDiagram-v2 and a Markdown page, from the StateNode tree
// itself (states, `on`, `after`, `always`, invoke onDone/onError, state onDone): nothing is drawn by hand.
//
// Layout rules (they keep Mermaid's layout happy):
// - every state is declared inside its parent's block, composite states as `state "key" as id { ... }`, parallel
//   regions separated by `--`;
// - every edge is declared in the block of the closest state that contains both ends (top level for the root);
// - a transition without a target, or one defined on the root or on a composite state, is drawn from a small
//   "(any)" pseudo-state inside that state (the root's is at the top level), since Mermaid cannot draw a
//   composite state's self-loop.
import type { AnyStateMachine } from 'xstate';

/** The parts of a StateNode the generator reads. */
interface Node {
  id: string;
  key: string;
  path: string[];
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  states: Record<string, Node>;
  initial?: { target: Node[] } | undefined;
  transitions: Map<string, Transition[]>;
  always?: Transition[] | undefined;
}

interface Transition {
  eventType: string;
  target?: Node[] | undefined;
  guard?: unknown;
  actions: unknown[];
}

/** One drawn transition, as the test and the Markdown table see it. */
export interface DiagramEdge {
  /** Mermaid id of the drawn source (a state, or an "(any)" pseudo-state). */
  from: string;
  /** Mermaid id of the target state (the source again when the transition has no target). */
  to: string;
  /** Dotted path of the state that defines the transition ('' for the root). */
  definedOn: string;
  /** Dotted path of the target, or null when the transition has no target. */
  target: string | null;
  event: string;
  guard: string | null;
  actions: string[];
  label: string;
}

/** A machine flattened for drawing: its states (by dotted path) and its edges. */
export interface MachineDiagram {
  id: string;
  states: Array<{ path: string; id: string; type: Node['type'] }>;
  edges: DiagramEdge[];
  mermaid: string;
}

const ROOT_ANY = 'any_state';

// The Mermaid id of a state: its path joined with underscores (the root has none).
export function mermaidId(path: readonly string[]): string {
  return path.map((key) => key.replace(/[^A-Za-z0-9_]/g, '_')).join('_');
}

const anyId = (node: Node): string => (node.path.length === 0 ? ROOT_ANY : `${mermaidId(node.path)}__any`);

// Keeps a label on one Mermaid line without characters its parser treats specially.
const clean = (text: string): string => text.replace(/[\n;#{}"<>]/g, ' ').replace(/\s+/g, ' ').trim();

// How an event type reads on an edge: `after backoff`, `launch done`, `always`, ...
export function eventLabel(eventType: string): string {
  if (eventType === '') return 'always';
  if (eventType.startsWith('xstate.after.')) {
    const delay = eventType.slice('xstate.after.'.length).split('.')[0] ?? '';
    return /^\d+$/.test(delay) ? `after ${delay} ms` : `after ${delay}`;
  }
  if (eventType === 'xstate.error.actor.*') return 'any child error';
  if (eventType.startsWith('xstate.done.actor.')) return `${eventType.slice('xstate.done.actor.'.length)} done`;
  if (eventType.startsWith('xstate.error.actor.')) return `${eventType.slice('xstate.error.actor.'.length)} error`;
  if (eventType.startsWith('xstate.done.state.')) return 'all regions done';
  return eventType;
}

// How a guard reads: its name, `name(param, ...)`, or `a and b` for combinators.
export function guardLabel(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const parts = (guard as { guards?: unknown[] }).guards;
    if (Array.isArray(parts)) {
      const names = parts.map((part) => guardLabel(part) ?? '?');
      return guard.name === 'not' ? `not ${names.join(', ')}` : names.join(` ${guard.name} `);
    }
    return guard.name || 'inline guard';
  }
  if (typeof guard === 'object' && 'type' in guard) {
    const { type, params } = guard as { type: string; params?: unknown };
    if (params && typeof params === 'object') return `${type}(${Object.values(params).map(String).join(', ')})`;
    return type;
  }
  return 'guard';
}

// How an action reads: its name (built-in actions by their type).
export function actionLabel(action: unknown): string {
  if (typeof action === 'string') return action;
  if (action && typeof action === 'object' && 'type' in action) return String((action as { type: unknown }).type);
  if (typeof action === 'function') return (action as { type?: string }).type ?? (action.name || 'inline action');
  return 'action';
}

// Every state node below `node`, depth first, in definition order.
function descendants(node: Node): Node[] {
  return Object.values(node.states).flatMap((child) => [child, ...descendants(child)]);
}

// The closest state containing both paths (as a path; [] is the root).
function commonAncestor(a: readonly string[], b: readonly string[]): string[] {
  const shared: string[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) break;
    shared.push(a[i] as string);
  }
  return shared;
}

// The edges of one state node's own transitions (not its children's).
function edgesOf(node: Node): Array<DiagramEdge & { scope: string[] }> {
  const transitions = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
  const composite = node.type === 'compound' || node.type === 'parallel';
  const edges: Array<DiagramEdge & { scope: string[] }> = [];
  for (const [index, t] of transitions.entries()) {
    const event = eventLabel(t.eventType);
    // A guardless branch after guarded ones for the same event is taken only when none of them passed.
    const earlierGuarded = transitions.slice(0, index).some((o) => o.eventType === t.eventType && o.guard !== undefined);
    const guard = guardLabel(t.guard) ?? (earlierGuarded ? 'else' : null);
    const actions = t.actions.map(actionLabel);
    const definedOn = node.path.join('.');
    const base = `${event}${guard ? ` [${guard}]` : ''}`;
    const targets = t.target && t.target.length > 0 ? t.target : null;
    if (targets === null) {
      // Stays put: a self-loop on the state, or on the "(any)" pseudo-state of the root or a composite state.
      const from = composite || node.path.length === 0 ? anyId(node) : mermaidId(node.path);
      const label = clean(actions.length > 0 ? `${base} / ${actions.join(', ')}` : base);
      const scope = composite || node.path.length === 0 ? node.path : node.path.slice(0, -1);
      edges.push({ from, to: from, definedOn, target: null, event, guard, actions, label, scope });
      continue;
    }
    for (const target of targets) {
      edges.push({
        from: node.path.length === 0 ? ROOT_ANY : mermaidId(node.path),
        to: mermaidId(target.path),
        definedOn,
        target: target.path.join('.'),
        event,
        guard,
        actions,
        label: clean(base),
        scope: node.path.length === 0 ? [] : commonAncestor(node.path.slice(0, -1), target.path.slice(0, -1)),
      });
    }
  }
  return edges;
}

// Flattens a machine into states and edges and renders the Mermaid diagram.
export function describeMachine(machine: AnyStateMachine): MachineDiagram {
  const root = machine.root as unknown as Node;
  const nodes = descendants(root);
  const edges = [root, ...nodes].flatMap(edgesOf);
  const needsAny = new Set(edges.filter((e) => e.from.endsWith('__any') || e.from === ROOT_ANY).map((e) => e.from));
  // One drawn arrow per pair of ends, its labels stacked: Mermaid overlaps the labels of parallel arrows.
  const arrows = new Map<string, { scope: string; from: string; to: string; labels: string[] }>();
  for (const edge of edges) {
    const key = `${edge.scope.join('.')}|${edge.from}|${edge.to}`;
    const arrow = arrows.get(key) ?? { scope: edge.scope.join('.'), from: edge.from, to: edge.to, labels: [] };
    arrow.labels.push(edge.label);
    arrows.set(key, arrow);
  }
  const byScope = new Map<string, string[]>();
  for (const arrow of arrows.values()) {
    const line = `${arrow.from} --> ${arrow.to} : ${arrow.labels.join('<br>')}`;
    byScope.set(arrow.scope, [...(byScope.get(arrow.scope) ?? []), line]);
  }

  const lines: string[] = ['stateDiagram-v2'];
  const emit = (node: Node, indent: string): void => {
    const children = Object.values(node.states);
    const regions = node.type === 'parallel';
    if (!regions && node.initial && node.initial.target.length > 0) {
      for (const target of node.initial.target) lines.push(`${indent}[*] --> ${mermaidId(target.path)}`);
    }
    if (needsAny.has(anyId(node)) && node.path.length > 0) lines.push(`${indent}state "(any)" as ${anyId(node)}`);
    children.forEach((child, index) => {
      if (regions && index > 0) lines.push(`${indent}--`);
      const id = mermaidId(child.path);
      if (Object.keys(child.states).length > 0) {
        lines.push(`${indent}state "${child.key}${child.type === 'parallel' ? ' (parallel)' : ''}" as ${id} {`);
        emit(child, `${indent}  `);
        lines.push(`${indent}}`);
      } else {
        lines.push(`${indent}state "${child.key}" as ${id}`);
        if (child.type === 'final') lines.push(`${indent}${id} --> [*]`);
      }
    });
    lines.push(...(byScope.get(node.path.join('.')) ?? []).map((line) => `${indent}${line}`));
  };
  if (needsAny.has(ROOT_ANY)) lines.push(`  state "(any state)" as ${ROOT_ANY}`);
  emit(root, '  ');

  return {
    id: machine.id,
    states: nodes.map((node) => ({ path: node.path.join('.'), id: mermaidId(node.path), type: node.type })),
    edges: edges.map(({ scope: _scope, ...edge }) => edge),
    mermaid: `${lines.join('\n')}\n`,
  };
}

const cell = (text: string): string => text.replace(/\|/g, '\\|');

// The Markdown page for one machine: the diagram and a table of every transition.
export function machinePage(machine: AnyStateMachine, sourceFile: string): string {
  const diagram = describeMachine(machine);
  const rows = diagram.edges.map(
    (e) =>
      `| ${e.definedOn || '(root)'} | ${cell(e.event)} | ${cell(e.guard ?? '')} | ${e.target ?? '(stays)'} | ${cell(e.actions.join(', '))} |`,
  );
  return [
    `# \`${diagram.id}\` machine`,
    '',
    `Generated by \`npm run machines:diagrams\` from \`${sourceFile}\`; do not edit by hand.`,
    '"(any)" stands for every state inside the box it is drawn in: its transitions apply whichever substate is active.',
    '',
    '```mermaid',
    diagram.mermaid.trimEnd(),
    '```',
    '',
    '## Transitions',
    '',
    'In definition order; for one event, the first row whose guard passes is taken.',
    '',
    '| defined on | event | guard | target | actions |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
