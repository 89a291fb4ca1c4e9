#!/usr/bin/env node
// Rewrites the config: block of Pulumi.yaml from the core's field table, keeping everything
// above it. Run after `npm run build`; test/core/fields.test.ts fails until the file matches.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { URL } from "node:url";

const { pulumiYaml } = createRequire(import.meta.url)("../packages/core/dist/index.js");
const file = new URL("../Pulumi.yaml", import.meta.url);
writeFileSync(file, pulumiYaml(readFileSync(file, "utf8")));
