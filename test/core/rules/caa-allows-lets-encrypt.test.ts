import { caaAllowsLetsEncrypt } from "../../../packages/core/src/config/rules/caa-allows-lets-encrypt";
import { check, lines } from "./check";

test("the default, a list with Let's Encrypt, or no CAA record pass", () => {
  expect(check(caaAllowsLetsEncrypt).ctx.caaIssuers).toEqual(["letsencrypt.org"]);
  expect(check(caaAllowsLetsEncrypt, { caaIssuers: ["LetsEncrypt.org", "sectigo.com", "letsencrypt.org"] }).ctx.caaIssuers).toEqual(["letsencrypt.org", "sectigo.com"]);
  expect(lines(caaAllowsLetsEncrypt, { caaIssuers: [] })).toEqual([]);
});

test("a list without Let's Encrypt is refused", () => {
  expect(lines(caaAllowsLetsEncrypt, { caaIssuers: ["sectigo.com"] })).toEqual([
    "caaIssuers: leaves out letsencrypt.org, the CA the host's certificate comes from, so renewals would fail; add it or set [] to publish no CAA record",
  ]);
});
