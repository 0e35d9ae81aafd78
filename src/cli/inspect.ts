// `warden run --inspect`: the Stately inspector through @statelyai/inspect (a local WebSocket bridge + stately.ai's page).
import { createServer } from 'node:net';
import type { InspectionEvent, Observer } from 'xstate';
import { CliError, EXIT } from './exit.js';

/** A running inspector bridge. */
export interface InspectorBridge {
  /** The local page to open in a browser. */
  url: string;
  /** Pass to createSupervisor's `inspect` option. */
  inspect: Observer<InspectionEvent>;
  stop(): void;
}

// Starts the inspector's local server on `port` and a WebSocket inspector connected to it (no browser is opened).
export async function startInspector(port: number): Promise<InspectorBridge> {
  // createInspectorServer listens on every interface and has no error handler: check the port first, or a busy
  // port would crash the process instead of giving a message.
  await assertPortFree(port);
  const { createInspectorServer } = await import('@statelyai/inspect/server');
  const { createWebSocketInspector } = await import('@statelyai/inspect');
  const server = createInspectorServer({ port, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://localhost:${port}` });
  return {
    url: `http://localhost:${port}`,
    inspect: inspector.inspect,
    stop() {
      inspector.stop();
      server.stop();
    },
  };
}

// What to tell the user, plainly: where the page comes from and where the events go.
export function inspectorNotice(url: string): string[] {
  return [
    `inspector   open ${url} in a browser`,
    `            That page embeds the Stately inspector, which loads from https://stately.ai/inspect (internet needed).`,
    `            The machines' events (states, context: pids, config) go from this process over a local WebSocket to`,
    `            your browser, which hands them to that page. The WebSocket listens on every network interface`,
    `            (a limit of @statelyai/inspect): use --inspect only on a machine and network you trust.`,
  ];
}

function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(new CliError(`the inspector cannot listen on port ${port} (${error.code ?? error.message}); pick another with --inspect-port`, EXIT.unavailable)),
    );
    probe.listen(port, () => probe.close(() => resolve()));
  });
}
