// The rules' layout: one rule per file, named like its file, listed once in RULES, each
// with a test file of its own here.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { RULES } from "../../../packages/core/src/config/rules";

const RULE_DIR = join(__dirname, "..", "..", "..", "packages", "core", "src", "config", "rules");
const files = readdirSync(RULE_DIR)
  .filter((f) => f.endsWith(".ts") && f !== "index.ts" && f !== "context.ts")
  .map((f) => f.slice(0, -3));
const camel = (file: string) => file.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

test("every rule file is listed once in RULES, under its file's name", () => {
  expect(RULES.map((r) => r.name).sort()).toEqual(files.map(camel).sort());
  expect(new Set(RULES).size).toBe(RULES.length);
});

test("every rule file exports just its rule", () => {
  for (const file of files) {
    expect([file, Object.keys(require(join(RULE_DIR, file)))]).toEqual([file, [camel(file)]]);
  }
});

test("every rule has a test file", () => {
  const tests = readdirSync(__dirname).filter((f) => f.endsWith(".test.ts"));
  expect(files.filter((f) => !tests.includes(`${f}.test.ts`))).toEqual([]);
});
