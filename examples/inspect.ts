// The embedded controller (examples/embedded-controller.ts) with the Stately inspector attached: watch the supervisor,
// the instance machines and the watchdog change state live while the WebUI starts, runs and shuts down.
//
//   npx tsx examples/inspect.ts                       # then open http://localhost:8080 in a browser; Ctrl-C shuts down
//   npx tsx examples/inspect.ts --inspect-port 8081 --once
//
// How it fits together (all from @statelyai/inspect):
//   createInspectorServer   a local HTTP + WebSocket server on --inspect-port. Its page embeds the Stately inspector,
//                           which the BROWSER loads from https://stately.ai/inspect (internet needed there; this
//                           process makes no outside request).
//   createWebSocketInspector  connects this process to that server; its `inspect` observer goes to createSupervisor.
// The machines' events (states, context: pids, config) travel this process → local WebSocket → your browser → the
// stately.ai page. The WebSocket server listens on every network interface (a limit of @statelyai/inspect): use it
// only on a machine and network you trust. `warden run --inspect` does the same for the CLI.
//
// In an application: import { createSupervisor } from 'webui-warden';
import { createServer } from 'node:net';
import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import type { InspectionEvent } from 'xstate';
import { exitWith, parseControllerArgs, runController } from './embedded-controller.js';

// createInspectorServer has no error handler: a busy port would crash the process, so look first.
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`the inspector cannot listen on port ${port} (${error.code ?? error.message}); pick another with --inspect-port`)));
    probe.listen(port, () => probe.close(() => resolvePort()));
  });
}

async function main(): Promise<number> {
  const { options, values } = parseControllerArgs(process.argv.slice(2), { 'inspect-port': { type: 'string', default: '8080' } });
  const inspectPort = Number(values['inspect-port']);
  if (!Number.isInteger(inspectPort) || inspectPort < 1 || inspectPort > 65535) throw new Error(`--inspect-port must be an integer from 1 to 65535 (got "${String(values['inspect-port'])}")`);
  await assertPortFree(inspectPort);

  const server = createInspectorServer({ port: inspectPort, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://localhost:${inspectPort}` });
  const page = `http://localhost:${inspectPort}`;
  process.stdout.write(
    [
      `inspector: open ${page} in a browser.`,
      '           That page embeds the Stately inspector, which loads from https://stately.ai/inspect (internet needed in',
      '           the browser). The machines\' events go over a local WebSocket to your browser, then to that page.',
      '',
    ].join('\n'),
  );

  let sent = 0;
  try {
    return await runController({
      ...options,
      // Every inspection event of the root actor and its children (instances, watchdog) goes to the inspector.
      inspect: (event: InspectionEvent) => {
        sent += 1;
        inspector.inspect.next?.(event);
      },
      onHealthy: async () => {
        process.stdout.write(`inspector: ${sent} inspection events so far\n`);
        if (!options.once) return;
        // The smoke test: the local bridge page answers and embeds the stately.ai inspector (nothing is fetched from it).
        const html = await (await fetch(`http://127.0.0.1:${inspectPort}/`, { signal: AbortSignal.timeout(5000) })).text();
        if (!html.includes('https://stately.ai/inspect')) throw new Error(`the inspector page at ${page} does not embed https://stately.ai/inspect`);
        process.stdout.write(`inspector: the bridge page at ${page} answers and embeds https://stately.ai/inspect\n`);
      },
    });
  } finally {
    inspector.stop();
    server.stop();
  }
}

main().then(exitWith, (error: unknown) => {
  process.stderr.write(`inspect: ${error instanceof Error ? error.message : String(error)}\n`);
  exitWith(1);
});
