// Runs inside a stack's network namespace: for each port given, a Unix socket in DIR that
// relays every connection to 127.0.0.1:PORT there. Unix sockets live in the file system, not
// in a network namespace, so a client outside can reach the daemons through them
// (test/support/netns-bridge.ts). Prints "ready" once every socket listens.
import { createConnection, createServer } from "node:net";

const [dir, ...ports] = process.argv.slice(2);
let listening = 0;
for (const port of ports) {
  const server = createServer((outside) => {
    const inside = createConnection({ host: "127.0.0.1", port: Number(port) });
    // A refused connection inside ends the outside one before any byte (netns-bridge.ts resets it).
    inside.on("error", () => outside.destroy());
    outside.on("error", () => inside.destroy());
    outside.pipe(inside).pipe(outside);
  });
  server.listen(`${dir}/${port}.sock`, () => {
    if (++listening === ports.length) process.stdout.write("ready\n");
  });
}
