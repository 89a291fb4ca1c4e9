#!/usr/bin/env node
// Plan-time benchmark. Every figure is a ratio between commands measured in the same run,
// interleaved round by round, so a shared, noisy machine slows them alike.
//
//   floor        a Node process that only imports the four Pulumi SDKs the stack uses
//   default      `mailstack plan` of the default stack (Pulumi.example.yaml)
//   one          `mailstack plan` of a stack with one mailbox
//   thousand     the same stack with 1,000 mailboxes (given as password hashes)
//
// Goals (issue #2): default <= 1.5x floor; thousand <= 1.1x one (mailboxes are data).
// Usage: node bench/plan.mjs [--rounds N]   (npm run bench:plan builds first)
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const { dump } = require("js-yaml");
const { hashPassword } = require("@mailstack/core");

const roundsArg = process.argv.indexOf("--rounds");
const rounds = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 7;
const work = mkdtempSync(join(tmpdir(), "mailstack-bench-"));
const hash = "{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW";

function stackFile(name, mailboxes) {
  const file = join(work, `Pulumi.${name}.yaml`);
  writeFileSync(
    file,
    dump({
      config: {
        "aws:region": "us-east-1",
        "mailstack:domain": "example.com",
        "mailstack:mailboxes": Array.from({ length: mailboxes }, (_, i) => ({
          address: `user${String(i).padStart(4, "0")}@example.com`,
          passwordHash: hash,
        })),
      },
    }),
  );
  return file;
}

const cli = join(root, "packages/cli/dist/main.js");
const commands = {
  floor: ["-e", "require('@pulumi/pulumi');require('@pulumi/aws');require('@pulumi/cloudflare');require('@pulumi/tls')"],
  default: [cli, "plan", "--out", join(work, "out-default")],
  one: [cli, "plan", "--config", stackFile("one", 1), "--out", join(work, "out-one")],
  thousand: [cli, "plan", "--config", stackFile("thousand", 1000), "--out", join(work, "out-thousand")],
};

const haveTime = spawnSync("/usr/bin/time", ["-f", "%M", "true"]).status === 0;
const samples = Object.fromEntries(Object.keys(commands).map((k) => [k, { seconds: [], rssMiB: [] }]));

function run(name) {
  const rssFile = join(work, `${name}.rss`);
  const args = haveTime ? ["-o", rssFile, "-f", "%M", process.execPath, ...commands[name]] : commands[name];
  const start = process.hrtime.bigint();
  const result = spawnSync(haveTime ? "/usr/bin/time" : process.execPath, args, { cwd: root, encoding: "utf8" });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) {
    process.stderr.write(`${name} failed (status ${result.status}):\n${result.stdout}\n${result.stderr}\n`);
    process.exit(1);
  }
  samples[name].seconds.push(seconds);
  if (haveTime) samples[name].rssMiB.push(Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) / 1024);
}

const names = Object.keys(commands);
run("floor"); // warm the file cache once; not counted below
for (const s of Object.values(samples)) {
  s.seconds.length = 0;
  s.rssMiB.length = 0;
}
for (let round = 0; round < rounds; round++) {
  // Rotate the order so no command always runs right after another.
  for (let i = 0; i < names.length; i++) run(names[(i + round) % names.length]);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const m = Object.fromEntries(names.map((n) => [n, median(samples[n].seconds)]));

// What a plaintext password adds: bcrypt runs on every preview for mailboxes given by password.
const hashRuns = 5;
const hashStart = process.hrtime.bigint();
for (let i = 0; i < hashRuns; i++) hashPassword(`correct horse battery staple ${i}`, `user${i}@example.com`, "/bench");
const perPassword = Number(process.hrtime.bigint() - hashStart) / 1e9 / hashRuns;

const ratios = {
  defaultOverFloor: m.default / m.floor,
  thousandOverOne: m.thousand / m.one,
};
const line = (label, value, goal) =>
  `${label.padEnd(34)} ${value.toFixed(3).padStart(7)}x   goal <= ${goal}x   ${value <= goal ? "met" : "MISSED"}`;
console.log(`mailstack plan benchmark: ${rounds} interleaved rounds, medians (wall seconds${haveTime ? ", peak RSS" : ""})`);
for (const n of names) {
  const rss = haveTime ? `  ${median(samples[n].rssMiB).toFixed(0).padStart(5)} MiB` : "";
  console.log(`  ${n.padEnd(10)} ${m[n].toFixed(3)} s${rss}`);
}
console.log(line("default plan / SDK import floor", ratios.defaultOverFloor, 1.5));
console.log(line("1,000 mailboxes / 1 mailbox", ratios.thousandOverOne, 1.1));
console.log(`bcrypt per plaintext password (cost 10): ${(perPassword * 1000).toFixed(0)} ms, paid on each preview; give passwordHash to avoid it`);

const resultsDir = join(root, "bench", "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  join(resultsDir, `plan-${new Date().toISOString().replace(/[:.]/g, "-")}.json`),
  JSON.stringify({ rounds, medians: m, ratios, perPasswordSeconds: perPassword, samples }, null, 2),
);
rmSync(work, { recursive: true, force: true });
