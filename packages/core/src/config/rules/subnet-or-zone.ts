import type { ConfigContext } from "./context";

/** A subnet fixes the availability zone, so the two are not given together. */
export function subnetOrZone(ctx: ConfigContext): void {
  if (ctx.input.subnetId && ctx.input.availabilityZone) {
    ctx.fail("availabilityZone", "conflicts with subnetId, which already fixes the zone; remove one");
  }
}
