import type { ConfigContext } from "./context";

/** Settings for the alarms need the address the alarms go to: without alertEmail there are none to change. */
export function alarmsNeedAlertEmail(ctx: ConfigContext): void {
  if (ctx.input.alarms !== undefined && ctx.input.alertEmail === undefined) {
    ctx.fail("alarms", "changes alarms that exist only with alertEmail (without an address there is no one to tell); set alertEmail, or leave alarms out");
  }
}
