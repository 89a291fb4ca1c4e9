import * as pulumi from "@pulumi/pulumi";
import { drain, installMocks, type PlanRecord, type RecordedResource } from "../../packages/cli/src/mock-runtime";
import { PlanFailure, userDataOf } from "../../packages/cli/src/plan";
import { watchProgram } from "../../packages/cli/src/watch";

export type { PlanRecord, RecordedResource };

export interface Run {
  record: PlanRecord;
  outputs: Record<string, any>;
  /** Every recorded resource of a type token, e.g. "aws:ec2/instance:Instance". */
  ofType(type: string): RecordedResource[];
  /** The one resource with this logical name. */
  named(name: string): RecordedResource;
  /** The cloud-init document the instance boots with. */
  userData(): string;
}

/**
 * Runs a Pulumi program under the recording mock runtime (the one `mailstack plan` uses)
 * and returns every resource it registered, with inputs, secrets marked and options.
 */
export async function runProgram(
  program: () => Record<string, unknown> | void,
  options: { stack?: string; project?: string; config?: Record<string, string>; secretKeys?: string[] } = {},
): Promise<Run> {
  pulumi.runtime.setAllConfig(options.config ?? {}, options.secretKeys ?? []);
  const record = installMocks(options.project ?? "mailstack", options.stack ?? "test", { region: options.config?.["aws:region"] });
  // A test must fail where `mailstack plan` (and a real deployment) would.
  const watch = watchProgram(require);
  let outputs: Record<string, any>;
  try {
    outputs = (await pulumi.runtime.runInPulumiStack(async () => program() ?? {})) as Record<string, any>;
    await drain();
    await watch.settle();
  } finally {
    watch.stop();
  }
  const problems = watch.problems(record);
  if (problems.length > 0) throw new PlanFailure(problems);
  const run: Run = {
    record,
    outputs: outputs ?? {},
    ofType: (type) => record.resources.filter((r) => r.type === type),
    named: (name) => {
      const found = record.resources.filter((r) => r.name === name);
      if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length}`);
      return found[0];
    },
    userData: () => {
      const userData = userDataOf(record);
      if (userData === undefined) throw new Error("no instance with user data was registered");
      return userData;
    },
  };
  return run;
}

/**
 * Runs constructors that must throw, each on its own, returning their errors (undefined where
 * one did not throw) and every resource registered meanwhile.
 */
export async function runFailing(attempts: (() => void)[], config?: Record<string, string>): Promise<{ errors: unknown[]; run: Run }> {
  const errors: unknown[] = [];
  const run = await runProgram(
    () => {
      for (const attempt of attempts) {
        try {
          attempt();
          errors.push(undefined);
        } catch (e) {
          errors.push(e);
        }
      }
    },
    { config },
  );
  return { errors, run };
}
