// An outside mail server for tests that follow mail off the stack: a minimal SMTP server run
// inside a stack's network namespace (`node smtp-sink.mjs ADDRESS PORT DIR`). It refuses
// blocked@ (as a server whose blocklist lists the client) and unknown@ at RCPT, accepts every
// other recipient and message, and writes each as DIR/<n>.json: the client's address, HELO, MAIL FROM, RCPT TOs and
// the message as received (dot-unstuffed). Prints "listening" once it accepts connections.
import { renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

const [address, port, dir] = process.argv.slice(2);
let count = 0;

const server = createServer((socket) => {
  socket.setEncoding("latin1");
  const session = { client: socket.remoteAddress, helo: "", from: null, rcpts: [] };
  let buffer = "";
  let data = null;
  const reply = (line) => socket.write(`${line}\r\n`);
  reply("220 sink.test ESMTP");
  socket.on("data", (chunk) => {
    buffer += chunk;
    for (;;) {
      if (data !== null) {
        const end = buffer.indexOf("\r\n.\r\n");
        // The end of data may follow the DATA reply's 354 at once ("\r\n" then ".\r\n").
        const atStart = data === "" && buffer.startsWith(".\r\n");
        if (end < 0 && !atStart) return;
        const body = atStart ? "" : buffer.slice(0, end + 2);
        buffer = buffer.slice(atStart ? 3 : end + 5);
        const message = { ...session, data: body.replace(/^\.\./gm, ".") };
        const file = join(dir, `${String(++count).padStart(4, "0")}.json`);
        writeFileSync(`${file}.tmp`, JSON.stringify(message));
        renameSync(`${file}.tmp`, file);
        data = null;
        session.from = null;
        session.rcpts = [];
        reply("250 2.0.0 Ok: kept");
        continue;
      }
      const eol = buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === "EHLO") {
        session.helo = line.slice(5).trim();
        reply("250-sink.test");
        reply("250-8BITMIME");
        reply("250 SMTPUTF8");
      } else if (verb === "HELO") {
        session.helo = line.slice(5).trim();
        reply("250 sink.test");
      } else if (verb === "MAIL") {
        session.from = /<([^>]*)>/.exec(line)?.[1] ?? "";
        session.rcpts = [];
        reply("250 2.1.0 Ok");
      } else if (verb === "RCPT") {
        const rcpt = /<([^>]*)>/.exec(line)?.[1] ?? "";
        // Refusals a remote server gives, by the recipient's local part.
        if (rcpt.startsWith("blocked@")) {
          reply(`554 5.7.1 Service unavailable; Client host [${session.client}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/${session.client}`);
        } else if (rcpt.startsWith("unknown@")) {
          reply(`550 5.1.1 <${rcpt}>: Recipient address rejected: User unknown`);
        } else {
          session.rcpts.push(rcpt);
          reply("250 2.1.5 Ok");
        }
      } else if (verb === "DATA") {
        data = "";
        reply("354 End data with <CR><LF>.<CR><LF>");
      } else if (verb === "QUIT") {
        reply("221 2.0.0 Bye");
        socket.end();
        return;
      } else if (verb === "RSET") {
        session.from = null;
        session.rcpts = [];
        reply("250 2.0.0 Ok");
      } else {
        reply("250 2.0.0 Ok");
      }
    }
  });
  socket.on("error", () => undefined);
});

server.listen(Number(port), address, () => console.log("listening"));
