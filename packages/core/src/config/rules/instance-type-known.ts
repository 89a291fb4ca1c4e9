import { instanceArchitecture } from "../../instance-types";
import type { ConfigContext } from "./context";

/**
 * The instance type is one EC2 offers, with enough memory, of a family whose architecture is
 * known or given, and not contradicted by `architecture`. Fills `architecture`.
 */
export function instanceTypeKnown(ctx: ConfigContext): void {
  const result = instanceArchitecture(ctx.input.instanceType, ctx.input.architecture);
  if (result.ok) ctx.architecture = result.architecture;
  else ctx.fail("instanceType", result.error);
}
