import type { ConfigContext } from "./context";

/** alertEmail is an e-mail address. Fills `alertEmail`, normalised. */
export function alertEmailAddress(ctx: ConfigContext): void {
  if (ctx.input.alertEmail !== undefined) ctx.alertEmail = ctx.addressAt("alertEmail", ctx.input.alertEmail);
}
