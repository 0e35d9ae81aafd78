// The `warden` executable (bin/warden.js imports the built copy, dist/src/cli.js): run the command, exit with its code.
import { main } from './cli/program.js';

const code = await main(process.argv);
// Exit explicitly (stdout is written synchronously to files, pipes and terminals on POSIX): a finished command must
// not linger on a timer or socket some library left behind.
process.stdout.write('', () => process.exit(code));
