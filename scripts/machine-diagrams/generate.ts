// Finds the machines stately.config.json points at and renders one Markdown page (Mermaid diagram) per machine.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AnyStateMachine } from 'xstate';
import { findMachineFiles, readStatelyConfig } from './config.js';
import { machinePage } from './mermaid.js';

/** One page to write: where, for which machine, and its text. */
export interface DiagramPage {
  path: string;
  machineId: string;
  sourceFile: string;
  content: string;
}

// True for an XState machine (a StateMachine instance: it has a root StateNode and a transition function).
export function isMachine(value: unknown): value is AnyStateMachine {
  return (
    typeof value === 'object' &&
    value !== null &&
    '__xstatenode' in value &&
    'root' in value &&
    typeof (value as { transition?: unknown }).transition === 'function'
  );
}

// Imports every configured machine file and renders `<outDir>/<machine id>.md` for each exported machine.
export async function generateDiagrams(root: string, configFile?: string): Promise<DiagramPage[]> {
  const config = readStatelyConfig(root, configFile);
  const pages: DiagramPage[] = [];
  for (const sourceFile of findMachineFiles(root, config)) {
    const module = (await import(pathToFileURL(join(root, sourceFile)).href)) as Record<string, unknown>;
    for (const machine of Object.values(module).filter(isMachine)) {
      const path = `${config.diagrams.outDir}/${machine.id}.md`;
      const clash = pages.find((page) => page.path === path);
      if (clash) throw new Error(`Two machines with id "${machine.id}": ${clash.sourceFile} and ${sourceFile}`);
      pages.push({ path, machineId: machine.id, sourceFile, content: machinePage(machine, sourceFile) });
    }
  }
  if (pages.length === 0) throw new Error(`No machine found in files matching ${config.include.join(', ')}`);
  return pages;
}
