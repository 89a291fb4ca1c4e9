import { closest } from "./suggest";

/**
 * AWS regions when this list was last updated: commercial, China (aws-cn) and GovCloud
 * (aws-us-gov). The list only feeds "did you mean" hints; acceptance goes by form (below).
 */
export const KNOWN_AWS_REGIONS = [
  "us-east-1", "us-east-2", "us-west-1", "us-west-2",
  "ca-central-1", "ca-west-1", "mx-central-1", "sa-east-1",
  "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1",
  "af-south-1", "il-central-1", "me-south-1", "me-central-1",
  "ap-east-1", "ap-east-2", "ap-south-1", "ap-south-2",
  "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
  "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
  "cn-north-1", "cn-northwest-1",
  "us-gov-east-1", "us-gov-west-1",
] as const;

// Every AWS region is named <area…>-<compass direction>-<number>. Names of that form are
// accepted even when missing from the list, so a region newer than this release is
// deployable at once; typos almost never keep the form (us-east, us-esat-1, eu-central-1a).
const REGION_FORM = "[a-z]+(?:-[a-z]+)*-(?:north|south|east|west|central|northeast|northwest|southeast|southwest)-\\d+";

/** An AWS region name such as eu-west-1 or us-gov-west-1, by form. */
export const AWS_REGION = new RegExp(`^${REGION_FORM}$`);
/** A KMS key ARN; aliases are refused because IAM cannot scope a grant to a key by its alias. */
export const KMS_KEY_ARN = new RegExp(`^arn:aws[a-z-]*:kms:(${REGION_FORM}):\\d{12}:key\\/(?:mrk-)?[0-9a-f-]{32,36}$`);
const ZONE = new RegExp(`^(${REGION_FORM})[a-z]$`);

/** Why a region name is wrong, with the fix, or undefined when it has the form of a region. */
export function checkRegion(region: string): string | undefined {
  if (AWS_REGION.test(region)) return undefined;
  const zone = ZONE.exec(region);
  if (zone) return `${JSON.stringify(region)} is not an AWS region; write it like ${zone[1]}, without the zone letter`;
  const near = closest(region, KNOWN_AWS_REGIONS);
  return `${JSON.stringify(region)} is not an AWS region; ${near ? `did you mean ${near}?` : "write it like eu-central-1"}`;
}

/** Why an availability zone name is wrong, or undefined when it is a region and a zone letter. */
export function checkAvailabilityZone(zone: string): string | undefined {
  if (ZONE.test(zone)) return undefined;
  const letter = /[a-z]$/.exec(zone)?.[0] ?? "a";
  const near = closest(zone, KNOWN_AWS_REGIONS.map((region) => region + letter));
  return `${JSON.stringify(zone)} must look like us-east-1a (a region and a zone letter)${near ? `; did you mean ${near}?` : ""}`;
}

/** The region an availability zone belongs to. */
export function regionOfZone(zone: string): string {
  return zone.slice(0, -1);
}
