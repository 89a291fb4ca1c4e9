import { regionOfZone } from "../regions";
import type { ConfigContext } from "./context";

/** The availability zone is one of the stack's region, where the host and its data volume are created. */
export function zoneInStackRegion(ctx: ConfigContext): void {
  const zone = ctx.input.availabilityZone;
  if (zone === undefined || ctx.region === undefined || regionOfZone(zone) === ctx.region) return;
  ctx.fail(
    "availabilityZone",
    `"${zone}" is a zone of ${regionOfZone(zone)}, but the stack deploys to ${ctx.region} (aws:region); use a zone of ${ctx.region}, or leave it out for the region's first zone`,
  );
}
