import type { ConfigContext } from "./context";

/** Object Lock keeps no version longer than the retention, which would keep versions, and their cost, past it. */
export function objectLockWithinRetention(ctx: ConfigContext): void {
  const { backupObjectLock: lock, backupRetentionDays: retention } = ctx.input;
  if (lock && lock.days > retention) {
    ctx.fail(
      "backupObjectLock.days",
      `locks each version for ${lock.days} days, longer than backupRetentionDays (${retention}), so old versions would outlive the retention and keep costing; set backupRetentionDays to at least ${lock.days} or shorten the lock`,
    );
  }
}
