#!/usr/bin/env node
// Run by each package's `prepack`: removes compiled files whose source is gone (a renamed or
// deleted module), which `tsc -b` leaves behind and `npm pack` would otherwise ship.
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const pkg = process.cwd();
const dist = join(pkg, "dist");
const OUTPUT = /\.(d\.ts\.map|d\.ts|js\.map|js)$/;

function prune(dir) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      prune(path);
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
      continue;
    }
    const source = join(pkg, "src", relative(dist, path).replace(OUTPUT, ".ts"));
    if (!OUTPUT.test(entry) || !existsSync(source)) {
      rmSync(path);
      process.stderr.write(`prune-dist: removed ${relative(pkg, path)} (no source)\n`);
    }
  }
}

if (!existsSync(dist)) {
  process.stderr.write(`prune-dist: ${relative(process.cwd(), dist)} does not exist; run npm run build first\n`);
  process.exit(1);
}
prune(dist);
