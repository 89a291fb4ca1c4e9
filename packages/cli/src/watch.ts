import type { PlanRecord } from "./mock-runtime";

/**
 * Everything that makes a real `pulumi up` fail but that the mock runtime lets pass quietly:
 * a resource whose registration failed (an input Output rejected, an apply threw), a
 * resource that was constructed but never reached the engine, a promise rejected with
 * nobody handling it, an error the program logged. Hooks the program's own @pulumi/pulumi
 * (internal modules, which is why the SDK is pinned to an exact version).
 */
export interface ProgramWatch {
  /**
   * Problems found, each naming the resource and its components where there is one.
   * `unregistered` (default true) counts resources that never reached the engine.
   */
  problems(record: PlanRecord, options?: { unregistered?: boolean }): string[];
  /** Resources constructed but not (yet) registered, for a report on timeout. */
  pending(record: PlanRecord): string[];
  /** Every error seen: failed registrations first, then unhandled rejections. */
  errors(): unknown[];
  /**
   * Waits until the program's failures stop arriving: one failed output rejects every
   * output built on it, each on a later turn of the event loop.
   */
  settle(): Promise<void>;
  /** Removes the hooks and the rejection listener. */
  stop(): void;
}

/** The SDK's view of a resource: internal fields every Resource has. */
interface SdkResource {
  __pulumiType?: string;
  __name?: string;
  __parentResource?: SdkResource;
}

/** `name (type) in parent (type) in …`: where in the program's tree a resource is. */
export function describeResource(res: SdkResource): string {
  const chain: string[] = [];
  for (let r: SdkResource | undefined = res; r && r.__pulumiType !== "pulumi:pulumi:Stack"; r = r.__parentResource) {
    chain.push(`${r.__name} (${r.__pulumiType})`);
  }
  return chain.join(" in ");
}

/** The cause, without the SDK's "error serializing property …:" wrappers that repeat per level. */
export function rootCause(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^(error serializing property "[^"]*": )+/, "");
}

export function watchProgram(requireFrom: NodeRequire): ProgramWatch {
  const resourceModule = requireFrom("@pulumi/pulumi/runtime/resource");
  const stateModule = requireFrom("@pulumi/pulumi/runtime/state");
  const register = resourceModule.registerResource;
  const failPending = stateModule.failPendingRegistration;

  const constructed: { res: SdkResource; type: string; name: string }[] = [];
  const failed: { res: SdkResource; error: unknown }[] = [];
  const rejections: unknown[] = [];

  resourceModule.registerResource = function (res: SdkResource, parent: unknown, type: string, name: string, ...rest: unknown[]) {
    constructed.push({ res, type, name });
    return register.call(this, res, parent, type, name, ...rest);
  };
  stateModule.failPendingRegistration = function (res: SdkResource, error: unknown) {
    failed.push({ res, error });
    return failPending.call(this, res, error);
  };
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on("unhandledRejection", onRejection);
  const errorsBefore: number = stateModule.getStore().logErrorCount ?? 0;

  const registered = (record: PlanRecord) => new Set(record.resources.map((r) => `${r.type}::${r.name}`));

  return {
    problems(record, { unregistered = true } = {}) {
      const problems: string[] = [];
      const causes = new Set<string>();
      for (const { res, error } of failed) {
        const cause = rootCause(error);
        causes.add(cause);
        problems.push(`${describeResource(res)} was not created: ${cause}`);
      }
      const done = registered(record);
      const failedResources = new Set(failed.map((f) => f.res));
      for (const { res, type, name } of unregistered ? constructed : []) {
        if (!done.has(`${type}::${name}`) && !failedResources.has(res)) problems.push(`${describeResource(res)} never reached the engine`);
      }
      // The same failure rejects every output that depends on it: report each cause once.
      for (const reason of rejections) {
        const cause = rootCause(reason);
        if (![...causes].some((known) => cause.includes(known))) {
          causes.add(cause);
          problems.push(`unhandled error: ${cause}`);
        }
      }
      const logged = (stateModule.getStore().logErrorCount ?? 0) - errorsBefore;
      if (problems.length === 0 && logged > 0) problems.push(`the program logged ${logged} error${logged === 1 ? "" : "s"} (printed above)`);
      return problems;
    },
    async settle() {
      let seen = -1;
      for (let turns = 0; turns < 100 && seen !== failed.length + rejections.length; turns++) {
        seen = failed.length + rejections.length;
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setImmediate(resolve));
      }
    },
    errors() {
      return [...failed.map((f) => f.error), ...rejections];
    },
    pending(record) {
      const done = registered(record);
      return constructed.filter(({ type, name }) => !done.has(`${type}::${name}`)).map(({ res }) => describeResource(res));
    },
    stop() {
      resourceModule.registerResource = register;
      stateModule.failPendingRegistration = failPending;
      process.off("unhandledRejection", onRejection);
    },
  };
}
