import type { ConfigContext } from "./context";

/** The signing, next and previous DKIM selectors differ: each key needs its own. Fills `dkimSelectors`. */
export function distinctDkimSelectors(ctx: ConfigContext): void {
  ctx.dkimSelectors.push(ctx.input.dkimSelector);
  for (const field of ["dkimNextSelector", "dkimPreviousSelector"] as const) {
    const value = ctx.input[field];
    if (value === undefined) continue;
    if (ctx.dkimSelectors.includes(value)) {
      ctx.fail(field, `"${value}" is already published (dkimSelector${ctx.dkimSelectors.length > 1 ? " or dkimNextSelector" : ""}); each key needs its own selector`);
    } else ctx.dkimSelectors.push(value);
  }
}
