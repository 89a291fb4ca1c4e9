import { replicaInOtherRegion } from "../../../packages/core/src/config/rules/replica-in-other-region";
import { lines } from "./check";

test("a replica elsewhere passes, and any replica when the region is unknown", () => {
  expect(lines(replicaInOtherRegion, { backupReplicaRegion: "eu-central-1" }, { region: "us-east-1" })).toEqual([]);
  expect(lines(replicaInOtherRegion, { backupReplicaRegion: "us-east-1" })).toEqual([]);
});

test("a replica in the stack's own region is refused", () => {
  expect(lines(replicaInOtherRegion, { backupReplicaRegion: "us-east-1" }, { region: "us-east-1" })).toEqual([
    'backupReplicaRegion: "us-east-1" is the stack\'s own region, so the replica would not survive losing it; choose another region',
  ]);
});
