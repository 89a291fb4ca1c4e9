import { verificationRecordsOnManagedDomains } from "../../../packages/core/src/config/rules/verification-records-on-managed-domains";
import { check, lines } from "./check";

test("fills the values by normalised domain, in input order", () => {
  const { issues, ctx } = check(verificationRecordsOnManagedDomains, {
    nonMailDomains: ["example.net"],
    verificationRecords: { "Example.com": ["google-site-verification=x1", "MS=ms2"], "example.net": ["MS=ms3"] },
  });
  expect(issues).toEqual([]);
  expect(ctx.verificationRecords).toEqual([
    { domain: "example.com", value: "google-site-verification=x1" },
    { domain: "example.com", value: "MS=ms2" },
    { domain: "example.net", value: "MS=ms3" },
  ]);
});

test("refuses a domain the stack does not manage and values that are not one printable string", () => {
  expect(lines(verificationRecordsOnManagedDomains, { verificationRecords: { "example.net": ["MS=1"], "example.com": ["MS=\n1", "x", "a".repeat(256)] } })).toEqual([
    'verificationRecords.example.net: "example.net" is neither a mail domain nor in nonMailDomains; verification records go on domains the stack manages',
    ...[0, 1, 2].map((i) => `verificationRecords.example.com[${i}]: must be 2–255 printable ASCII characters, e.g. google-site-verification=… as the postmaster tool shows it`),
  ]);
});
