#!/usr/bin/env node
// Plan-time benchmark. Every figure is a ratio between commands measured in the same run,
// interleaved round by round, so a shared, noisy machine slows them alike.
//
//   floor        a Node process that only imports the four Pulumi SDKs the stack uses
//   default      `mailstack plan` of the default stack (Pulumi.example.yaml)
//   one          `mailstack plan` of a stack with one mailbox
//   thousand     the same stack with 1,000 mailboxes (given as password hashes)
//   plaintext    the same stack with 1,000 mailboxes given by plain password
//
// Goals: default <= 1.5x floor, thousand <= 1.1x one (issue #2: mailboxes are data);
// plaintext <= 2x one (issue #10: a plan hashes no password; `pulumi up` hashes a password
// once, when it is new or changed, which the second part measures on the hashing resource's
// own provider: an update that changes one of 200 passwords against a create of one).
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
const { installMocks, drain, loadDynamicProvider } = require("./packages/cli/dist/mock-runtime.js");
const { PASSWORD_HASHES_KIND } = require("@mailstack/pulumi");

const roundsArg = process.argv.indexOf("--rounds");
const rounds = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 7;
const work = mkdtempSync(join(tmpdir(), "mailstack-bench-"));
const hash = "{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW";

function stackFile(name, mailboxes, credential = () => ({ passwordHash: hash })) {
  const file = join(work, `Pulumi.${name}.yaml`);
  writeFileSync(
    file,
    dump({
      config: {
        "aws:region": "us-east-1",
        "mailstack:domain": "example.com",
        "mailstack:mailboxes": Array.from({ length: mailboxes }, (_, i) => ({
          address: `user${String(i).padStart(4, "0")}@example.com`,
          ...credential(i),
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
  plaintext: [cli, "plan", "--config", stackFile("plaintext", 1000, (i) => ({ password: `a passphrase of ${i} words` })), "--out", join(work, "out-plaintext")],
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

// The hashing resource's provider, serialized and loaded as Pulumi's dynamic-provider process
// does (the first resource a one-mailbox program registers under the mock runtime).
async function hashingProvider() {
  const pulumi = require("@pulumi/pulumi");
  const record = installMocks("bench", "bench");
  await pulumi.runtime.runInPulumiStack(async () => {
    const { PasswordHashes } = require("@mailstack/pulumi");
    new PasswordHashes("hashes", { context: "/bench", passwords: { "a@example.com": "one long passphrase" } });
  });
  await drain();
  const resource = record.resources.find((r) => r.inputs.kind === PASSWORD_HASHES_KIND);
  return loadDynamicProvider(resource.inputs.__provider, require);
}
const seconds = async (work) => {
  const start = process.hrtime.bigint();
  const result = await work();
  return [Number(process.hrtime.bigint() - start) / 1e9, result];
};
const provider = await hashingProvider();
const passwords = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`user${i}@example.com`, `a passphrase of ${i} words`]));
const inputs = (p) => ({ kind: PASSWORD_HASHES_KIND, context: "/bench", passwords: p });
const [createMany, { outs: state }] = await seconds(() => provider.create(inputs(passwords)));
const [previewMany] = await seconds(() => provider.diff("id", state, inputs({ ...passwords })));
const updateOne = [];
const createOne = [];
for (let round = 0; round < rounds; round++) {
  const changed = { ...passwords, "user7@example.com": `a changed passphrase ${round}` };
  updateOne.push((await seconds(() => provider.update("id", state, inputs(changed))))[0]);
  createOne.push((await seconds(() => provider.create(inputs({ "user7@example.com": `a changed passphrase ${round}` }))))[0]);
}

const ratios = {
  defaultOverFloor: m.default / m.floor,
  thousandOverOne: m.thousand / m.one,
  plaintextOverOne: m.plaintext / m.one,
  updateOneOfManyOverCreateOne: median(updateOne) / median(createOne),
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
console.log(line("1,000 plain passwords / 1 mailbox", ratios.plaintextOverOne, 2));
console.log(line("up, 1 of 200 changed / 1 new", ratios.updateOneOfManyOverCreateOne, 2));
console.log(`first up of 200 plain passwords: ${createMany.toFixed(1)} s (once); preview of them unchanged: ${(previewMany * 1000).toFixed(2)} ms`);

const resultsDir = join(root, "bench", "results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  join(resultsDir, `plan-${new Date().toISOString().replace(/[:.]/g, "-")}.json`),
  JSON.stringify({ rounds, medians: m, ratios, provider: { createMany, previewMany, updateOne, createOne }, samples }, null, 2),
);
rmSync(work, { recursive: true, force: true });
