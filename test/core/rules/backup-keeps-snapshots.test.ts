import { backupKeepsSnapshots } from "../../../packages/core/src/config/rules/backup-keeps-snapshots";
import { lines } from "./check";

test("any period above 0 passes; a period left out keeps its default", () => {
  expect(lines(backupKeepsSnapshots, { backupKeep: { daily: 0, weekly: 0, monthly: 1 } })).toEqual([]);
  expect(lines(backupKeepsSnapshots, { backupKeep: { daily: 0, weekly: 0 } })).toEqual([]);
});

test("keeping nothing is refused", () => {
  expect(lines(backupKeepsSnapshots, { backupKeep: { daily: 0, weekly: 0, monthly: 0 } })).toEqual([
    "backupKeep: keeps no snapshot at all, so every backup would be pruned; keep at least one, e.g. { daily: 7 }",
  ]);
});
