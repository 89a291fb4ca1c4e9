import { checkRegion } from "../regions";
import type { ConfigContext } from "./context";

/** The stack's region, when the caller knows it, is a region. Fills `region`. */
export function stackRegionExists(ctx: ConfigContext): void {
  const region = ctx.options.region;
  if (region === undefined) return;
  const problem = checkRegion(region);
  if (problem) ctx.fail("aws:region", problem);
  else ctx.region = region;
}
