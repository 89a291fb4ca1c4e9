import type { ConfigContext } from "./context";

/** The backup replica is in another region than the stack, or it would not survive losing that region. */
export function replicaInOtherRegion(ctx: ConfigContext): void {
  if (ctx.region !== undefined && ctx.input.backupReplicaRegion === ctx.region) {
    ctx.fail("backupReplicaRegion", `"${ctx.region}" is the stack's own region, so the replica would not survive losing it; choose another region`);
  }
}
