// Amazon SES's SMTP interface, as a test stand-in (`node ses-smtp.mjs ADDRESS PORT DIR`), run in a
// network namespace of its own that the stack reaches as email-smtp.<region>.amazonaws.com
// (test/support/ses-stand-in.ts). It answers as SES does: STARTTLS before anything else ("530 Must
// issue a STARTTLS command first" for AUTH and MAIL without it), AUTH PLAIN or LOGIN before MAIL
// ("530 Authentication required"), and only the SMTP credentials of the IAM access key it was
// given: the key id as user name and the password SES derives from the key's secret for its
// region; anything else gets "535 Authentication Credentials Invalid".
//
// Settings arrive as one JSON line each on stdin (the first before it listens), and every one
// closes the open connections, so that the next session sees them (as if the endpoint behind
// the name changed):
//   accessKeyId, secretAccessKey, region   the one key it accepts
//   cert, key                              PEM files of the certificate it presents after STARTTLS
//   starttls: "offer" | "none" | "refuse"  offer STARTTLS; not offer it; offer it and answer 454
//   refuse: null | { at: "MAIL" | "RCPT" | "DATA", reply }   refuse every message there (DATA: after its content)
// It answers each line with "ok" on stdout once applied (the first with "listening" once it accepts).
//
// Every session is written to DIR/sessions/<n>.json after each command (client address, TLS
// protocol and cipher, AUTH mechanism and user, every command and reply with AUTH's secrets left
// out), and every accepted message to DIR/messages/<n>.json with its session's TLS and AUTH
// state, envelope and content (dot-unstuffed).
import { createHmac } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createSecureContext, TLSSocket } from "node:tls";

const [address, port, dir] = process.argv.slice(2);
mkdirSync(join(dir, "sessions"), { recursive: true });
mkdirSync(join(dir, "messages"), { recursive: true });

/**
 * The SMTP password of an IAM secret access key in a region, as AWS documents it ("Obtaining
 * Amazon SES SMTP credentials", the Python script there): HMAC-SHA256 chained from "AWS4" +
 * the secret over the date 11111111, the region, "ses", "aws4_request" and "SendRawEmail", the
 * version byte 4 in front, in base64. Written here from AWS's description, not taken from the
 * core, so that the core's derivation is checked against SES's rather than against itself.
 */
function smtpPassword(secret, region) {
  let key = Buffer.from(`AWS4${secret}`, "utf8");
  for (const part of ["11111111", region, "ses", "aws4_request", "SendRawEmail"]) key = createHmac("sha256", key).update(part, "utf8").digest();
  return Buffer.concat([Buffer.from([4]), key]).toString("base64");
}

let settings = null;
let context = null;
const open = new Set();
let sessions = 0;
let messages = 0;

function apply(line) {
  const next = JSON.parse(line);
  settings = { starttls: "offer", refuse: null, ...next };
  // A fresh context (and with it fresh session ticket keys) per setting: no TLS session of an
  // earlier certificate can be resumed under a later one.
  context = createSecureContext({ cert: readFileSync(settings.cert), key: readFileSync(settings.key), minVersion: "TLSv1.2" });
  for (const socket of open) socket.destroy();
  open.clear();
}

const write = (file, value) => {
  writeFileSync(`${file}.tmp`, JSON.stringify(value));
  renameSync(`${file}.tmp`, file);
};

function session(plain) {
  const s = settings;
  const record = { id: ++sessions, client: plain.remoteAddress, tls: null, helo: null, auth: null, commands: [] };
  const file = join(dir, "sessions", `${String(record.id).padStart(4, "0")}.json`);
  open.add(plain);
  plain.on("close", () => open.delete(plain));
  plain.on("error", () => undefined);
  let socket = plain;
  let buffer = "";
  let envelope = null;
  /** Set while DATA's content is read, or while AUTH waits for a continuation line. */
  let data = null;
  let pending = null;
  const save = () => write(file, record);
  const reply = (command, text) => {
    record.commands.push({ command, reply: text });
    save();
    socket.write(`${text.replace(/\n/g, "\r\n")}\r\n`);
  };
  const ehlo = () =>
    [
      "250-email-smtp.amazonaws.com",
      "250-8BITMIME",
      ...(record.tls === null && s.starttls !== "none" ? ["250-STARTTLS"] : []),
      "250-AUTH PLAIN LOGIN",
      "250 Ok",
    ].join("\n");
  const decode = (b64) => Buffer.from(b64, "base64").toString("utf8");
  const authenticate = (command, mechanism, user, password) => {
    const ok = user === s.accessKeyId && password === smtpPassword(s.secretAccessKey, s.region);
    record.auth = { mechanism, user, ok };
    reply(command, ok ? "235 Authentication successful." : "535 Authentication Credentials Invalid");
  };
  const refused = (at) => s.refuse && s.refuse.at === at;

  const onLine = (line) => {
    if (pending) {
      const step = pending;
      pending = null;
      step(line);
      return;
    }
    const verb = line.split(" ")[0].toUpperCase();
    const arg = line.slice(verb.length + 1).trim();
    // AUTH's arguments are credentials: the record keeps the command and mechanism only.
    const command = verb === "AUTH" ? `AUTH ${arg.split(" ")[0].toUpperCase()}` : line;
    if (verb === "EHLO" || verb === "HELO") {
      record.helo = arg;
      envelope = null;
      reply(command, verb === "EHLO" ? ehlo() : "250 email-smtp.amazonaws.com");
    } else if (verb === "STARTTLS") {
      if (record.tls !== null || s.starttls === "none") return reply(command, "502 5.5.1 Unrecognized command.");
      if (s.starttls === "refuse") return reply(command, "454 4.7.0 TLS not available due to temporary reason");
      reply(command, "220 Ready to start TLS");
      plain.removeAllListeners("data");
      buffer = "";
      const secure = new TLSSocket(plain, { isServer: true, secureContext: context });
      secure.on("error", (e) => {
        record.commands.push({ command: "(TLS handshake)", reply: `(error: ${e.code ?? e.message})` });
        save();
      });
      secure.on("secure", () => {
        record.tls = { protocol: secure.getProtocol(), cipher: secure.getCipher().name };
        save();
      });
      secure.setEncoding("latin1");
      secure.on("data", onData);
      socket = secure;
      // A client that starts over with EHLO after TLS: the session so far is forgotten.
      record.helo = null;
      envelope = null;
    } else if (verb === "QUIT") {
      reply(command, "221 Bye");
      socket.end();
    } else if (verb === "NOOP") {
      reply(command, "250 Ok");
    } else if (verb === "RSET") {
      envelope = null;
      reply(command, "250 Ok");
    } else if (record.tls === null && ["AUTH", "MAIL", "RCPT", "DATA"].includes(verb)) {
      reply(command, "530 Must issue a STARTTLS command first");
    } else if (verb === "AUTH") {
      if (record.auth?.ok) return reply(command, "503 Already authenticated");
      const [mechanism, initial] = arg.split(" ");
      if (mechanism.toUpperCase() === "PLAIN") {
        const plainAuth = (b64) => {
          const [, user = "", password = ""] = decode(b64).split("\0");
          authenticate(command, "PLAIN", user, password);
        };
        if (initial) return plainAuth(initial);
        pending = plainAuth;
        reply(command, "334 ");
      } else if (mechanism.toUpperCase() === "LOGIN") {
        const password = (user) => {
          pending = (b64) => authenticate(command, "LOGIN", user, decode(b64));
          reply(command, "334 UGFzc3dvcmQ6");
        };
        if (initial) return password(decode(initial));
        pending = (b64) => password(decode(b64));
        reply(command, "334 VXNlcm5hbWU6");
      } else {
        reply(command, "504 Unrecognized authentication type.");
      }
    } else if (!record.auth?.ok && ["MAIL", "RCPT", "DATA"].includes(verb)) {
      reply(command, "530 Authentication required");
    } else if (verb === "MAIL") {
      if (refused("MAIL")) return reply(command, s.refuse.reply);
      envelope = { from: /<([^>]*)>/.exec(line)?.[1] ?? "", rcpts: [] };
      reply(command, "250 Ok");
    } else if (verb === "RCPT") {
      if (envelope === null) return reply(command, "503 Error: need MAIL command");
      if (refused("RCPT")) return reply(command, s.refuse.reply);
      envelope.rcpts.push(/<([^>]*)>/.exec(line)?.[1] ?? "");
      reply(command, "250 Ok");
    } else if (verb === "DATA") {
      if (envelope === null || envelope.rcpts.length === 0) return reply(command, "503 Error: need RCPT command");
      data = "";
      reply(command, "354 End data with <CR><LF>.<CR><LF>");
    } else {
      reply(command, "502 5.5.1 Unrecognized command.");
    }
  };

  const onData = (chunk) => {
    buffer += chunk;
    for (;;) {
      if (data !== null) {
        // The end of data may follow the 354 at once ("\r\n" then ".\r\n").
        const atStart = buffer.startsWith(".\r\n");
        const end = buffer.indexOf("\r\n.\r\n");
        if (end < 0 && !atStart) return;
        const body = atStart ? "" : buffer.slice(0, end + 2);
        buffer = buffer.slice(atStart ? 3 : end + 5);
        data = null;
        const message = { session: record.id, client: record.client, tls: record.tls, auth: record.auth, ...envelope, data: body.replace(/^\.\./gm, ".") };
        envelope = null;
        if (refused("DATA")) {
          reply("(end of data)", s.refuse.reply);
          continue;
        }
        const id = ++messages;
        write(join(dir, "messages", `${String(id).padStart(4, "0")}.json`), message);
        reply("(end of data)", `250 Ok 0102019a${String(id).padStart(8, "0")}-test-000000`);
        continue;
      }
      const eol = buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      // After STARTTLS's 220, anything the client sent along in plaintext is dropped (RFC 3207).
      const before = socket;
      onLine(line);
      if (socket !== before) return;
    }
  };

  plain.setEncoding("latin1");
  plain.on("data", onData);
  save();
  socket.write("220 email-smtp.amazonaws.com ESMTP SimpleEmailService-d-TEST0000 Test\r\n");
}

const server = createServer(session);
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (!line.trim()) return;
  const first = settings === null;
  apply(line);
  if (first) server.listen(Number(port), address, () => console.log("listening"));
  else console.log("ok");
});
// The test ends the stand-in by closing its stdin (or killing it).
input.on("close", () => process.exit(0));
