import type { ConfigContext } from "./context";

/** The restic keep policy keeps at least one snapshot, or every backup would be pruned. */
export function backupKeepsSnapshots(ctx: ConfigContext): void {
  const { daily, weekly, monthly } = ctx.input.backupKeep;
  if (daily + weekly + monthly === 0) {
    ctx.fail("backupKeep", "keeps no snapshot at all, so every backup would be pruned; keep at least one, e.g. { daily: 7 }");
  }
}
