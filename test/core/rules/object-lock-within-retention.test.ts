import { objectLockWithinRetention } from "../../../packages/core/src/config/rules/object-lock-within-retention";
import { lines } from "./check";

test("a lock up to the retention passes", () => {
  expect(lines(objectLockWithinRetention, { backupRetentionDays: 30, backupObjectLock: { mode: "GOVERNANCE", days: 30 } })).toEqual([]);
});

test("a lock past the retention, given or default, is refused", () => {
  expect(lines(objectLockWithinRetention, { backupObjectLock: { mode: "COMPLIANCE", days: 91 } })).toEqual([
    "backupObjectLock.days: locks each version for 91 days, longer than backupRetentionDays (90), so old versions would outlive the retention and keep costing; set backupRetentionDays to at least 91 or shorten the lock",
  ]);
});
