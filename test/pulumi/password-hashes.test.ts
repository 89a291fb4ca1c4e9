// Plain passwords are hashed by a resource that keeps the hashes in the stack's state: its
// provider, serialized and loaded the way Pulumi's dynamic-provider process loads it, hashes
// a password when it is new or changed and never on a preview of unchanged ones.
import * as core from "@mailstack/core";
import { PASSWORD_HASHES_KIND, PasswordHashes } from "@mailstack/pulumi";
import { loadDynamicProvider } from "../../packages/cli/src/mock-runtime";
import { type RecordedResource, runProgram } from "../support/harness";

const CONTEXT = "/mailstack/test/mail";
const PASSWORDS = {
  "alice@example.com": "correct horse battery staple",
  "bob@example.com": "tulip-gravel-Orbit-42-lantern",
  "carol@example.com": "a third passphrase, long enough",
};

let resource: RecordedResource;

beforeAll(async () => {
  const run = await runProgram(() => {
    new PasswordHashes("hashes", { context: CONTEXT, passwords: PASSWORDS });
  });
  resource = run.named("hashes");
});

/** The provider as Pulumi runs it, with the core's hashing counted. */
function provider() {
  const calls: string[] = [];
  const counted = {
    ...core,
    hashPasswordAsync: (password: string, address: string, context: string) => {
      calls.push(address);
      return core.hashPasswordAsync(password, address, context);
    },
  };
  const requireCounted = Object.assign((id: string) => (/[\\/]core[\\/]/.test(id) ? counted : require(id)), require) as NodeRequire;
  return { calls, provider: loadDynamicProvider(resource.inputs.__provider, requireCounted) };
}

const inputs = (passwords: Record<string, string>, context = CONTEXT) => ({ kind: PASSWORD_HASHES_KIND, context, passwords });

test("the passwords are a secret input and the hashes a secret output", () => {
  expect(resource.type).toBe("pulumi-nodejs:dynamic:Resource");
  expect(resource.inputs.kind).toBe(PASSWORD_HASHES_KIND);
  expect(resource.secretPaths).toEqual(["passwords"]);
  expect(resource.additionalSecretOutputs.sort()).toEqual(["hashes", "passwords"]);
});

test("create hashes each password as the core does", async () => {
  const { calls, provider: p } = provider();
  const { outs } = await p.create(inputs(PASSWORDS));
  expect(calls.sort()).toEqual(Object.keys(PASSWORDS).sort());
  for (const [address, password] of Object.entries(PASSWORDS)) expect(outs.hashes[address]).toBe(core.hashPassword(password, address, CONTEXT));
  expect(resource.state.hashes).toEqual(outs.hashes);
});

test("a preview with the same passwords finds no change, so nothing is hashed", async () => {
  const { calls, provider: p } = provider();
  const { outs: state } = await p.create(inputs(PASSWORDS));
  calls.length = 0;
  expect(await p.diff("id", state, inputs({ ...PASSWORDS }))).toEqual({ changes: false });
  expect(calls).toEqual([]);
});

test.each([
  ["a changed password", { ...PASSWORDS, "bob@example.com": "a brand new passphrase" }, CONTEXT],
  ["a new mailbox", { ...PASSWORDS, "dave@example.com": "dave's own long passphrase" }, CONTEXT],
  ["a removed mailbox", { "alice@example.com": PASSWORDS["alice@example.com"] }, CONTEXT],
  ["another context", PASSWORDS, "/mailstack/other/mail"],
])("%s is a change", async (_title, passwords, context) => {
  const { provider: p } = provider();
  const { outs: state } = await p.create(inputs(PASSWORDS));
  expect(await p.diff("id", state, inputs(passwords, context))).toEqual({ changes: true });
});

test("an update hashes only what changed and keeps every other hash as it was", async () => {
  const { calls, provider: p } = provider();
  const { outs: state } = await p.create(inputs(PASSWORDS));
  calls.length = 0;
  const next = { "alice@example.com": PASSWORDS["alice@example.com"], "bob@example.com": "a brand new passphrase", "dave@example.com": "dave's own long passphrase" };
  const { outs } = await p.update("id", state, inputs(next));
  expect(calls.sort()).toEqual(["bob@example.com", "dave@example.com"]);
  expect(outs.hashes["alice@example.com"]).toBe(state.hashes["alice@example.com"]);
  expect(outs.hashes["bob@example.com"]).toBe(core.hashPassword("a brand new passphrase", "bob@example.com", CONTEXT));
  expect(Object.keys(outs.hashes).sort()).toEqual(Object.keys(next).sort());
  expect(outs.passwords).toEqual(next);
});
