// How the tests run examples/complete: its project name, passwords and base stack config.
import { SAMPLE_HASH } from "../support/fixtures";
import { runProgram, type Run } from "../support/harness";

export const COMPLETE_PROJECT = "mailstack-example-complete";
export const COMPLETE_PASSWORDS = { alice: "correct horse battery staple", bob: "tulip-gravel-Orbit-42-lantern" };

/** Runs examples/complete as stack `prod` with its required settings plus `extra` (keys without the project prefix). */
export function runComplete(extra: Record<string, string>): Promise<Run> {
  const p = COMPLETE_PROJECT;
  const config = {
    domain: "example.com",
    secondDomain: "example.org",
    alertEmail: "ops@example.net",
    alicePassword: COMPLETE_PASSWORDS.alice,
    bobPassword: COMPLETE_PASSWORDS.bob,
    carolPasswordHash: SAMPLE_HASH,
    ...extra,
  };
  return runProgram(() => require("../../examples/complete/index.ts"), {
    project: p,
    stack: "prod",
    config: Object.fromEntries(Object.entries(config).map(([key, value]) => [`${p}:${key}`, value])),
    secretKeys: [`${p}:alicePassword`, `${p}:bobPassword`, `${p}:carolPasswordHash`],
  });
}
