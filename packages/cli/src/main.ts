#!/usr/bin/env node
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { check, CHECK_USAGE } from "./check";
import { bundleOf, isConfigError, maskedInputs, plan, userDataOf } from "./plan";
import { UsageError } from "./project";
import { formatTable } from "./report";

const PLAN_USAGE = `usage: mailstack plan [--config FILE] [--out DIR] [--json] [--program DIR] [--timeout SECONDS]

Runs the mail stack's Pulumi program with no cloud account (Pulumi's mock runtime) and shows
every resource it would create, with secrets masked. Writes the rendered artifacts (cloud-init
user data, each host file, a BIND zone file per domain) to the out directory.

  --config FILE   stack settings file (default: Pulumi.example.yaml next to Pulumi.yaml)
  --out DIR       artifact directory (default: plan-out)
  --json          print resources and outputs as JSON instead of a table
  --program DIR   the Pulumi project (default: the nearest Pulumi.yaml above the current directory)
  --timeout SEC   give up after this long (default: 120)`;

const USAGE = `${PLAN_USAGE}\n\n${CHECK_USAGE}`;

/** Errors the user can fix: printed as they are, without a stack trace. */
function isUserError(error: unknown): error is Error {
  return error instanceof UsageError || isConfigError(error);
}

function fail(error: unknown): never {
  if (isUserError(error)) {
    process.stderr.write(`mailstack: ${error.message}\n`);
    process.exit(2);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`mailstack ${process.argv[2] === "check" ? "check" : "plan"} failed: ${message}\n`);
  if (process.env.MAILSTACK_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exit(1);
}

/** exit() does not wait for a pipe to take what is written: a long report would arrive cut. */
async function exitAfterOutput(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "check") return exitAfterOutput(await check(argv.slice(1)));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      out: { type: "string", default: "plan-out" },
      json: { type: "boolean", default: false },
      program: { type: "string", default: "." },
      timeout: { type: "string", default: "120" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (positionals[0] !== "plan" || positionals.length > 1) throw new UsageError(USAGE);
  const seconds = Number(values.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout must be a positive number of seconds`);

  const result = await plan({
    program: resolve(values.program as string),
    config: values.config ? resolve(values.config) : undefined,
    out: resolve(values.out as string),
    timeoutSeconds: seconds,
  });
  // Anything the program leaves failing after the plan has been checked still fails the command.
  process.on("unhandledRejection", fail);

  if (values.json) {
    const resources = result.record.resources.map((r) => ({
      type: r.type,
      name: r.name,
      urn: r.urn,
      parent: r.parent,
      dependsOn: r.dependsOn,
      protect: r.protect,
      inputs: maskedInputs(r),
    }));
    process.stdout.write(`${JSON.stringify({ project: result.project, stack: result.stack, resources, outputs: result.outputs }, null, 2)}\n`);
  } else {
    const userData = userDataOf(result.record);
    const bundle = bundleOf(result.record);
    process.stdout.write(`Plan for stack ${result.stack} of ${result.project} (mock runtime, no cloud calls)\n\n`);
    process.stdout.write(`${formatTable(result.record)}\n\n`);
    process.stdout.write(`${result.record.resources.filter((r) => r.custom).length} cloud resources; `);
    process.stdout.write(`user data ${userData ? `${Buffer.byteLength(userData)} bytes` : "absent"}; `);
    process.stdout.write(`host bundle ${bundle ? `${bundle.key}, ${bundle.files.length} files, ${Buffer.byteLength(bundle.document)} bytes` : "absent"}\n`);
    process.stdout.write(`Artifacts in ${values.out}/: ${result.artifacts.length} files (user-data.yaml, host-bundle.json, host/, zones/, resources.json)\n`);
    if (typeof result.outputs.nextSteps === "string") process.stdout.write(`\n${result.outputs.nextSteps}\n`);
  }
  await exitAfterOutput(0);
}

main(process.argv.slice(2)).catch(fail);
