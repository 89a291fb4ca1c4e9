#!/usr/bin/env node
// Delivery pipeline benchmark. Postfix's own smtp-source drives three stacks started once
// from the core's rendered files (test/support/stack.ts) and measured round-robin, so a
// shared, noisy machine slows them alike:
//
//   full         the production pipeline, every filter active: postscreen on port 25,
//                rspamd as a milter over a unix socket (SPF/DKIM/DMARC, RBLs through the
//                local unbound, Bayes on redis, greylisting, DKIM signing), LMTP to Dovecot
//   unfiltered   the same Postfix and Dovecot without the milter (no rspamd, no redis)
//   discard      Postfix alone, delivering to its discard transport
//
// The client stands for a sender on the internet: smtp-source runs inside the stack's
// namespace and its connections to the host address (192.0.2.25) leave from 198.51.100.20,
// the address outside.example's SPF record names. smtp-source has no option to pick its
// source address, so the namespace's local route to 192.0.2.25 is given that preferred
// source (nothing else connects to 192.0.2.25; the daemons talk over loopback and unix
// sockets). rspamd and Postfix then treat the client as external: no mynetworks, no
// rspamd "local" shortcut, and Postfix's per-client limits apply. Because of the latter
// (smtpd_client_connection_rate_limit = 60/min) each of the N sessions sends its messages
// over one connection (smtp-source -d). --connection-per-message drops -d and exempts the
// bench client from the event limits instead (the one setting this benchmark changes).
//
// Each message is the same 1.8 KB plain-text mail from bench@outside.example to
// alice@example.com (SPF pass, no DKIM signature; smtp-source cannot vary the message, so
// Bayes autolearning sees one message and skips the rest: real mail costs rspamd more).
//
// Each stack is warmed up first (postscreen's first-contact tests, rspamd's hyperscan
// database, 500 messages). Per round and stack: the recipient's home is removed (ext4
// directories never shrink, and Dovecot rescans Maildir/new on each delivery and quota
// check, so a reused Maildir would cost more round after round), a probe message absorbs
// any postscreen re-test, then N messages are timed from the first connection to the last
// delivery (Maildir count for LMTP, empty queue for discard).
// Memory: PSS (and RSS) from /proc/<pid>/smaps_rollup of every process in the namespace,
// grouped by daemon, sampled every 0.5 s, maximum reported. The three stacks share library
// pages, so each one's PSS is a little lower than on a host of its own; rspamd is measured
// as started cold (it compiled its regexps), which holds more memory than after a reload.
// CPU: user+system time of the namespace's processes (plus reaped children) per message,
// by daemon; on a CPU-bound machine the throughput ratio follows the CPU ratio, and the
// CPU figures are steadier than msg/s when other work shares the machine.
//
// Goals (issue): full >= 0.75x unfiltered; full stack's daemons <= 800 MiB PSS under load.
// Usage: node bench/pipeline.mjs [--rounds 3] [--messages 2000] [--sessions 10]
//          [--connection-per-message] [--variants full,unfiltered,discard]
//        (npm run bench:pipeline builds first; needs root, Postfix, Dovecot, rspamd,
//        redis-server and unbound installed)
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { clearInterval, setInterval } from "node:timers";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const { TestStack, HOST_IP, OUTSIDE_DOMAIN, OUTSIDE_IP, sleep } = require(join(root, "dist/test-support/stack.js"));

const RECIPIENT = "alice@example.com";
const SENDER = `bench@${OUTSIDE_DOMAIN}`;
const CONFIG = { domain: "example.com", mailboxes: [{ address: RECIPIENT, password: "correct horse battery staple" }] };
const SMTP_SOURCE = "/usr/sbin/smtp-source";
const GROUPS = ["postfix", "dovecot", "rspamd", "redis", "unbound"];
const TICKS = 100; // CLK_TCK on Linux

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const options = {
  rounds: Number(arg("rounds", 3)),
  messages: Number(arg("messages", 2000)),
  sessions: Number(arg("sessions", 10)),
  perMessageConnections: process.argv.includes("--connection-per-message"),
  variants: arg("variants", "full,unfiltered,discard").split(","),
};

const work = mkdtempSync(join(tmpdir(), "mailstack-bench-"));
const removeWork = () => rmSync(work, { recursive: true, force: true });
const messageFile = join(work, "message.txt");
writeFileSync(
  messageFile,
  [
    `From: Bench Sender <${SENDER}>`,
    `To: Alice <${RECIPIENT}>`,
    "Subject: Minutes of Thursday's planning meeting",
    "Date: Fri, 27 Nov 2026 10:00:00 +0000",
    `Message-ID: <pipeline-bench@${OUTSIDE_DOMAIN}>`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    "Hello Alice,",
    "",
    ...Array.from(
      { length: 12 },
      (_, i) => `${i + 1}. We went through the open items of the quarter, agreed on the next steps for the migration and noted who follows up.`,
    ),
    "",
    "The next meeting is on Thursday at ten, in the usual room.",
    "",
    "Regards,",
    "Bench",
  ].join("\n"),
);

// ---- processes of a namespace: memory and CPU by daemon ----------------------------------

function group(pid) {
  let exe;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
  if (exe.startsWith("/usr/lib/postfix/") || /\/sbin\/post\w+$/.test(exe)) return "postfix";
  if (exe.startsWith("/usr/lib/dovecot/") || exe.endsWith("/dovecot") || exe.endsWith("/doveadm")) return "dovecot";
  if (exe.endsWith("/rspamd")) return "rspamd";
  if (exe.includes("redis")) return "redis";
  if (exe.endsWith("/unbound")) return "unbound";
  return null; // the client, ip(8), shells
}

function pids(ns) {
  // The namespace's processes (what `ip netns pids` lists), without a fork per sample.
  const out = [];
  const target = nsInode(`/run/netns/${ns}`);
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readlinkSync(`/proc/${d}/ns/net`) === target) out.push(Number(d));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

const inodes = new Map();
function nsInode(path) {
  if (!inodes.has(path)) {
    const { ino } = statSync(path);
    inodes.set(path, `net:[${ino}]`);
  }
  return inodes.get(path);
}

const zero = () => Object.fromEntries(GROUPS.map((g) => [g, 0]));

/** Calls `read(group, text)` with a /proc/<pid>/ file of every daemon process in the namespace. */
function eachDaemon(ns, file, read) {
  for (const pid of pids(ns)) {
    const g = group(pid);
    if (!g) continue;
    let text;
    try {
      text = readFileSync(`/proc/${pid}/${file}`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    read(g, text);
  }
}

/** PSS and RSS in KiB by daemon group. */
function memory(ns) {
  const pss = zero();
  const rss = zero();
  const count = zero();
  eachDaemon(ns, "smaps_rollup", (g, text) => {
    pss[g] += Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    rss[g] += Number(/^Rss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    count[g] += 1;
  });
  return { pss, rss, count };
}

/** CPU seconds by daemon group: own time of every live process plus its reaped children's. */
function cpu(ns) {
  const out = zero();
  eachDaemon(ns, "stat", (g, stat) => {
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields after the command: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    out[g] += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS;
  });
  return out;
}

// ---- one stack ---------------------------------------------------------------------------

/**
 * Starts a stack of `variant` and makes it ready to measure: client source route, the
 * client passed by postscreen, rspamd's hyperscan database loaded, a warm-up batch
 * delivered.
 */
async function prepare(name, variant) {
  const t0 = Date.now();
  const stack = await TestStack.start(CONFIG, { variant });
  const s = { name, variant, stack, ns: stack.ns, started: (Date.now() - t0) / 1000 };
  try {
    // Connections to the host address leave from the outside sender's address.
    const route = stack.exec("ip", ["route", "replace", "local", HOST_IP, "dev", "lo", "table", "local", "proto", "kernel", "scope", "host", "src", OUTSIDE_IP]);
    if (route.status !== 0) throw new Error(`${name}: cannot set the client's source route: ${route.stderr}`);
    if (options.perMessageConnections) {
      const cf = stack.paths.postfixConfig;
      stack.exec("postconf", ["-c", cf, "-e", `smtpd_client_event_limit_exceptions=$mynetworks ${OUTSIDE_IP}`]);
      stack.exec("postfix", ["-c", cf, "reload"]);
    }
    // postscreen's first connection from a new client: greeting wait, deep protocol tests,
    // then 450 and a reconnect. smtp-source gives up on the 450; the next attempt passes.
    let passed = false;
    for (let i = 0; i < 5 && !passed; i++) passed = (await smtpSource(s, 1, 1)).status === 0;
    if (!passed) throw new Error(`${name}: postscreen never let the bench client through\n${stack.logs()}`);
    if (variant === "full") {
      await stack.until("rspamd's hyperscan database", () => /rspamd_proxy.*full hyperscan database/.test(stack.log("rspamd")), 120000);
    }
    await waitDelivered(s, 1, 60000);
    // Warm every daemon (process pools, caches, rspamd's Lua state) with a batch like a round's.
    const warm = Math.min(options.messages, 500);
    await clear(s);
    const r = await smtpSource(s, warm, options.sessions);
    if (r.status !== 0) throw new Error(`${name}: warm-up failed: ${r.stderr}\n${stack.logs()}`);
    await waitDelivered(s, warm, 300000);
    s.idle = memory(s.ns);
    return s;
  } catch (e) {
    await stack.stop();
    throw e;
  }
}

/**
 * Postfix allows an external client 60 connections a minute (smtpd_client_connection_rate_limit,
 * counted by anvil over 60 s). Waits, between measurements, until `sessions` more fit.
 */
async function connectionBudget(s, sessions) {
  if (options.perMessageConnections) return;
  s.connections ??= [];
  for (;;) {
    const recent = s.connections.filter((t) => t > Date.now() - 62000);
    s.connections = recent;
    if (recent.length + sessions <= 55) break;
    await sleep(recent[0] + 62000 - Date.now());
  }
  for (let i = 0; i < sessions; i++) s.connections.push(Date.now());
}

async function smtpSource(s, messages, sessions) {
  await connectionBudget(s, sessions);
  const args = [
    "netns", "exec", s.ns, SMTP_SOURCE,
    ...(options.perMessageConnections ? [] : ["-d"]),
    "-s", String(sessions), "-m", String(messages),
    "-M", `mx.${OUTSIDE_DOMAIN}`, "-f", SENDER, "-t", RECIPIENT, "-F", messageFile,
    `${HOST_IP}:25`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stdout.resume();
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ status: code, stderr }));
  });
}

const maildir = (s) => join(s.stack.paths.vmail, "example.com/alice/Maildir");

function countDir(dir) {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
}

/** Delivered so far: messages in the mailbox (inbox and Junk), or for discard an empty queue. */
function delivered(s) {
  if (s.variant === "discard") return null;
  const m = maildir(s);
  return ["new", "cur", ".Junk/new", ".Junk/cur"].reduce((n, d) => n + countDir(join(m, d)), 0);
}

function queued(s) {
  const q = s.stack.paths.postfixQueue;
  let n = 0;
  for (const d of ["maildrop", "incoming", "active", "deferred", "hold"]) {
    const walk = (dir) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else n++;
      }
    };
    try {
      walk(join(q, d));
    } catch {
      // not created yet
    }
  }
  return n;
}

async function waitDelivered(s, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A message is in the Maildir before Dovecot has updated its index and answered
    // Postfix: done means delivered and gone from the queue.
    const d = delivered(s);
    if ((d === null || d >= n) && queued(s) === 0) return;
    if (Date.now() > deadline) throw new Error(`${s.name}: ${d ?? "?"} of ${n} delivered, ${queued(s)} queued after ${timeoutMs / 1000} s\n${s.stack.logs()}`);
    await sleep(20);
  }
}

/**
 * Removes the recipient's home, so that every round delivers into a new, empty Maildir.
 * Expunging is not enough: ext4 directories never shrink, and Dovecot rescans new/ on each
 * delivery and quota check, so a reused Maildir costs more round after round. LMTP and
 * quota-status open the user afresh for each message; the next delivery recreates it.
 */
async function clear(s) {
  if (s.variant === "discard") return;
  rmSync(join(s.stack.paths.vmail, "example.com", RECIPIENT.split("@")[0]), { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
}

/** One measured round on one stack. */
async function measure(s) {
  await clear(s);
  // The probe absorbs any postscreen re-test (cache entries expire) before the clock starts.
  const probe = await smtpSource(s, 1, 1);
  if (probe.status !== 0) throw new Error(`${s.name}: probe failed: ${probe.stderr}`);
  await waitDelivered(s, 1, 60000);
  await clear(s);

  const n = options.messages;
  const peak = { pss: zero(), rss: zero(), total: 0, totalRss: 0 };
  const sample = () => {
    const m = memory(s.ns);
    const total = GROUPS.reduce((t, g) => t + m.pss[g], 0);
    const totalRss = GROUPS.reduce((t, g) => t + m.rss[g], 0);
    for (const g of GROUPS) {
      peak.pss[g] = Math.max(peak.pss[g], m.pss[g]);
      peak.rss[g] = Math.max(peak.rss[g], m.rss[g]);
    }
    peak.total = Math.max(peak.total, total);
    peak.totalRss = Math.max(peak.totalRss, totalRss);
  };
  const cpu0 = cpu(s.ns);
  const start = process.hrtime.bigint();
  const sampler = setInterval(sample, 500);
  const sent = await smtpSource(s, n, options.sessions);
  const accepted = Number(process.hrtime.bigint() - start) / 1e9;
  if (sent.status !== 0) {
    clearInterval(sampler);
    throw new Error(`${s.name}: smtp-source failed (${sent.status}): ${sent.stderr}\n${s.stack.logs()}`);
  }
  sample();
  await waitDelivered(s, n, Math.max(120000, n * 200));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  clearInterval(sampler);
  sample();
  const cpu1 = cpu(s.ns);
  const cpuMs = Object.fromEntries(GROUPS.map((g) => [g, ((cpu1[g] - cpu0[g]) * 1000) / n]));
  return { seconds, accepted, rate: n / seconds, peak, cpuMsPerMessage: cpuMs };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mib = (kib) => kib / 1024;

/** Round-robin rounds over prepared stacks; samples by stack name. */
async function rounds(stacks, count, log = console.log) {
  const samples = Object.fromEntries(stacks.map((s) => [s.name, []]));
  for (let round = 0; round < count; round++) {
    // Rotate the order so no stack always runs right after another.
    for (let i = 0; i < stacks.length; i++) {
      const s = stacks[(i + round) % stacks.length];
      const r = await measure(s);
      samples[s.name].push(r);
      log(`  round ${round + 1} ${s.name.padEnd(12)} ${r.rate.toFixed(0).padStart(5)} msg/s  (${r.seconds.toFixed(2)} s, accepted in ${r.accepted.toFixed(2)} s)  PSS ${mib(r.peak.total).toFixed(0)} MiB`);
    }
  }
  return samples;
}

/** Medians of a stack's samples. */
function summary(list) {
  return {
    rate: median(list.map((r) => r.rate)),
    seconds: median(list.map((r) => r.seconds)),
    pssMiB: Object.fromEntries(GROUPS.map((g) => [g, mib(Math.max(...list.map((r) => r.peak.pss[g])))])),
    rssMiB: Object.fromEntries(GROUPS.map((g) => [g, mib(Math.max(...list.map((r) => r.peak.rss[g])))])),
    pssTotalMiB: mib(Math.max(...list.map((r) => r.peak.total))),
    rssTotalMiB: mib(Math.max(...list.map((r) => r.peak.totalRss))),
    cpuMsPerMessage: Object.fromEntries(GROUPS.map((g) => [g, median(list.map((r) => r.cpuMsPerMessage[g]))])),
  };
}

function table(names, sums, idle) {
  const lines = [];
  const col = (v, w = 9) => String(v).padStart(w);
  lines.push(`  ${"".padEnd(12)}${col("msg/s")}${GROUPS.map((g) => col(g)).join("")}${col("total")}   (PSS MiB, max under load)`);
  for (const n of names) {
    const m = sums[n];
    lines.push(`  ${n.padEnd(12)}${col(m.rate.toFixed(0))}${GROUPS.map((g) => col(m.pssMiB[g] ? m.pssMiB[g].toFixed(0) : "-")).join("")}${col(m.pssTotalMiB.toFixed(0))}   RSS ${m.rssTotalMiB.toFixed(0)} MiB`);
  }
  lines.push(`  CPU ms per message (median):`);
  for (const n of names) {
    const c = sums[n].cpuMsPerMessage;
    const t = GROUPS.reduce((a, g) => a + c[g], 0);
    lines.push(`  ${n.padEnd(12)}${col("")}${GROUPS.map((g) => col(c[g] ? c[g].toFixed(2) : "-")).join("")}${col(t.toFixed(2))}`);
  }
  if (idle) {
    lines.push(`  PSS MiB idle after warm-up:`);
    for (const n of names) {
      const p = idle[n].pss;
      lines.push(`  ${n.padEnd(12)}${col("")}${GROUPS.map((g) => col(p[g] ? mib(p[g]).toFixed(0) : "-")).join("")}${col(mib(GROUPS.reduce((a, g) => a + p[g], 0)).toFixed(0))}`);
    }
  }
  return lines.join("\n");
}

async function main() {
  if (process.getuid?.() !== 0) {
    console.error("bench/pipeline needs root (network namespaces, daemons dropping privileges)");
    process.exit(1);
  }
  const { rounds: count, messages, sessions } = options;
  if (sessions > 45 && !options.perMessageConnections) {
    console.error("at most 45 sessions: Postfix limits an external client to 50 connections (60 a minute)");
    process.exit(1);
  }
  console.log(
    `mailstack pipeline benchmark: ${count} interleaved rounds of ${messages} messages over ${sessions} sessions ` +
      `(${options.perMessageConnections ? "one connection per message" : "messages reuse the session's connection"}), medians`,
  );
  const stacks = [];
  const stopAll = async () => {
    for (const s of stacks) await s.stack.stop().catch(() => undefined);
    removeWork();
  };
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => stopAll().then(() => process.exit(130)));
  try {
    for (const v of options.variants) {
      const s = await prepare(v, v);
      stacks.push(s);
      console.log(`  ${v.padEnd(12)} started in ${s.started.toFixed(1)} s, warmed up`);
    }
    const samples = await rounds(stacks, count);
    const names = stacks.map((s) => s.name);
    const sums = Object.fromEntries(names.map((n) => [n, summary(samples[n])]));
    const idle = Object.fromEntries(stacks.map((s) => [s.name, s.idle]));
    console.log(table(names, sums, idle));
    const ratios = {};
    if (sums.full && sums.unfiltered) ratios.fullOverUnfiltered = sums.full.rate / sums.unfiltered.rate;
    if (sums.full && sums.discard) ratios.fullOverDiscard = sums.full.rate / sums.discard.rate;
    if (sums.unfiltered && sums.discard) ratios.unfilteredOverDiscard = sums.unfiltered.rate / sums.discard.rate;
    if (sums.full && sums.unfiltered) {
      const cpuTotal = (n) => GROUPS.reduce((a, g) => a + sums[n].cpuMsPerMessage[g], 0);
      ratios.cpuUnfilteredOverFull = cpuTotal("unfiltered") / cpuTotal("full");
    }
    for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(34)} ${v.toFixed(2)}x`);
    if (ratios.fullOverUnfiltered !== undefined) {
      const ok = ratios.fullOverUnfiltered >= 0.75;
      console.log(`  full / unfiltered ${ratios.fullOverUnfiltered.toFixed(2)}x   goal >= 0.75x   ${ok ? "met" : "MISSED"}`);
    }
    if (sums.full) {
      const ok = sums.full.pssTotalMiB <= 800;
      console.log(`  full stack PSS under load ${sums.full.pssTotalMiB.toFixed(0)} MiB   goal <= 800 MiB   ${ok ? "met" : "MISSED"}`);
    }
    const resultsDir = join(root, "bench", "results");
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      join(resultsDir, `pipeline-${new Date().toISOString().replace(/[:.]/g, "-")}.json`),
      JSON.stringify({ options, medians: sums, ratios, idle, samples }, null, 2),
    );
  } finally {
    await stopAll();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
