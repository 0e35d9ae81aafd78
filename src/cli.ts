// The `warden` executable (bin/warden.js imports the built copy, dist/src/cli.js): run the command, exit with its code.
import { main } from './cli/program.js';

const code = await main(process.argv);
// Exit explicitly once stdout has taken everything: a finished command must not linger on a timer or socket that
// some library left behind. A stdout whose reader is gone (`| head`) has nothing left to flush.
if (process.stdout.destroyed || !process.stdout.writable) process.exit(code);
else process.stdout.write('', () => process.exit(code));
