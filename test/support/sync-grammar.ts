import { join } from "node:path";
import { run } from "./tools";

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-sync.py");

/** mailstack-sync's verdict on each [grammar, content], from the script itself: null when it parses, else [line, reason]. */
export function grammarProblems(files: [grammar: string, content: string][]): ([number, string] | null)[] {
  const program = `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sync", sys.argv[1])
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)
print(json.dumps([sync.content_problem(g, c.encode("utf-8")) for g, c in json.load(sys.stdin)]))
`;
  const r = run("/usr/bin/python3", ["-B", "-c", program, SCRIPT], { input: JSON.stringify(files) });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as ([number, string] | null)[];
}

/** Every printable ASCII character but the space. */
export const PRINTABLE = Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i)).join("");
