// Mail clients run inside a test stack's network namespace (the test process itself cannot
// enter it). Reads {fn, args} as JSON on stdin, prints the result as JSON on stdout.
//
//   smtp   one raw SMTP session: a list of commands, each reply recorded as sent
//   imap   log in over IMAPS with imapflow; list, fetch and move messages
//   http   one HTTP request, over TLS verified against a given CA and name, or in plaintext
//   httpEach  several of them
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect as tcpConnect } from "node:net";
import { clearTimeout, setTimeout } from "node:timers";
import { connect as tlsConnect } from "node:tls";
import { ImapFlow } from "imapflow";

const TLS = { rejectUnauthorized: false, servername: "localhost" };

/** Reads SMTP replies (multi-line "250-..." until "250 ...") from a socket. */
class Replies {
  constructor(socket) {
    this.buffer = "";
    this.waiting = null;
    this.attach(socket);
  }
  attach(socket) {
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (d) => {
      this.buffer += d;
      this.check();
    });
    socket.on("close", () => {
      this.closed = true;
      this.check();
    });
    socket.on("error", (e) => {
      this.error = e;
      this.check();
    });
  }
  check() {
    if (!this.waiting) return;
    const m = this.buffer.match(/^(?:\d{3}-.*\r?\n)*\d{3}(?: .*)?\r?\n/);
    if (m) {
      this.buffer = this.buffer.slice(m[0].length);
      const w = this.waiting;
      this.waiting = null;
      w(m[0].replace(/\r/g, "").trimEnd());
    } else if (this.closed || this.error) {
      const w = this.waiting;
      this.waiting = null;
      w(this.error ? `(error: ${this.error.code ?? this.error.message})` : "(closed)");
    }
  }
  next(timeoutMs) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        resolve("(timeout)");
      }, timeoutMs);
      this.waiting = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.check();
    });
  }
}

function opened(socket, event) {
  return new Promise((resolve) => {
    socket.once(event, () => resolve(null));
    socket.once("error", (e) => resolve(e));
  });
}

/**
 * One SMTP session. `steps` are strings (a command line), {data: message} (DATA, then the
 * message and the final dot), {starttls: true} (STARTTLS, then TLS on success),
 * {raw: text} (bytes sent as they are, then one reply read) or {wait: ms}; `pregreet` is
 * sent before the server's greeting. Returns the
 * banner and, per step, what was sent and the reply (which stops at the first "(closed)").
 */
async function smtp({ host = "127.0.0.1", port, source, implicitTls = false, steps, timeoutMs = 20000, tls = {}, pregreet }) {
  const options = { host, port, localAddress: source };
  let socket = implicitTls ? tlsConnect({ ...options, ...TLS, ...tls }) : tcpConnect(options);
  const error = await opened(socket, implicitTls ? "secureConnect" : "connect");
  if (error) return { banner: `(error: ${error.code ?? error.message})`, replies: [], tls: null };
  const replies = new Replies(socket);
  // A client that talks before the server's greeting, as spam bots do.
  if (pregreet) socket.write(pregreet);
  const banner = await replies.next(timeoutMs);
  const out = [];
  let tlsInfo = implicitTls ? socket.getProtocol() : null;
  for (const step of steps) {
    if (typeof step === "object" && step.wait) {
      await new Promise((r) => setTimeout(r, step.wait));
      continue;
    }
    const command = typeof step === "string" ? step : step.starttls ? "STARTTLS" : step.data !== undefined ? "DATA" : step.raw;
    socket.write(typeof step === "object" && step.raw !== undefined ? step.raw : `${command}\r\n`);
    let reply = await replies.next(timeoutMs);
    if (typeof step === "object" && step.data !== undefined && reply.startsWith("354")) {
      const body = step.data.replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..");
      socket.write(`${body}${body.endsWith("\r\n") ? "" : "\r\n"}.\r\n`);
      reply = `${reply}\n${await replies.next(timeoutMs)}`;
    }
    out.push({ sent: command, reply });
    if (typeof step === "object" && step.starttls && reply.startsWith("220")) {
      socket.removeAllListeners("data");
      const secure = tlsConnect({ socket, ...TLS, ...tls });
      const failed = await opened(secure, "secureConnect");
      if (failed) {
        out.push({ sent: "(TLS handshake)", reply: `(error: ${failed.code ?? failed.message})` });
        break;
      }
      tlsInfo = secure.getProtocol();
      socket = secure;
      replies.attach(secure);
    }
    if (reply === "(closed)" || reply.startsWith("(error")) break;
  }
  socket.destroy();
  return { banner, replies: out, tls: tlsInfo };
}

/**
 * IMAPS as a mail client does it. `actions`: {list: mailbox} returns each message's flags
 * and full source; {move: [from, uid, to]} moves one message; {status: mailbox}.
 */
async function imap({ host = "127.0.0.1", port, source, user, pass, actions, tls = {} }) {
  const client = new ImapFlow({ host, port, secure: true, tls: { ...TLS, ...tls, localAddress: source }, auth: { user, pass }, logger: false });
  try {
    await client.connect();
  } catch (e) {
    return { error: e.authenticationFailed ? "authentication failed" : e.code ?? e.message, response: e.responseText ?? null };
  }
  const results = [];
  for (const action of actions) {
    if (action.list !== undefined) {
      const lock = await client.getMailboxLock(action.list);
      try {
        const messages = [];
        for await (const m of client.fetch("1:*", { uid: true, flags: true, source: true }, { uid: false })) {
          messages.push({ uid: m.uid, flags: [...m.flags], source: m.source.toString("utf8") });
        }
        results.push(messages);
      } catch (e) {
        // An empty mailbox answers 1:* with an error on some servers.
        results.push(client.mailbox.exists === 0 ? [] : { error: e.message });
      } finally {
        lock.release();
      }
    } else if (action.move) {
      const [from, uid, to] = action.move;
      const lock = await client.getMailboxLock(from);
      try {
        results.push(await client.messageMove(String(uid), to, { uid: true }));
      } finally {
        lock.release();
      }
    } else if (action.status !== undefined) {
      results.push(await client.status(action.status, { messages: true }));
    }
  }
  await client.logout();
  return { results };
}

/**
 * One request to `port` on 127.0.0.1 with `servername` as SNI and Host. With `ca` (PEM) the
 * server's certificate must chain to it and name `servername`; `plain` sends HTTP without TLS.
 * Returns {status, headers, body, peer} or {error}.
 */
async function http({ port = 443, servername, path, method = "GET", body, ca, plain = false }) {
  return new Promise((resolve) => {
    const options = { host: "127.0.0.1", port, path, method, headers: { host: servername }, agent: false };
    const request = plain ? httpRequest(options) : httpsRequest({ ...options, servername, ca, rejectUnauthorized: true });
    request.setTimeout(10000, () => request.destroy(new Error("timeout")));
    request.on("error", (e) => resolve({ error: e.code ?? e.message }));
    request.on("response", (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (d) => (text += d));
      response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, body: text }));
    });
    request.end(body);
  });
}

/** Several requests one after another: {requests: [http args]} → [http results]. */
async function httpEach({ requests }) {
  const results = [];
  for (const r of requests) results.push(await http(r));
  return results;
}

const functions = { smtp, imap, http, httpEach };
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", async () => {
  const { fn, args } = JSON.parse(input);
  const result = await functions[fn](args);
  // imapflow reports UIDVALIDITY as a BigInt.
  process.stdout.write(JSON.stringify(result, (_k, v) => (typeof v === "bigint" ? String(v) : v)));
  process.exit(0);
});
