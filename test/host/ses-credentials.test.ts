// mailstack-sync's grammar of the SES relay's credentials file: what the core renders parses,
// for any password SES derives; a file that would add a second next hop or a setting does not.
import { parseConfig, runtimeFiles, SES_SMTP_CREDENTIALS_FILE, sesSmtpPassword } from "@mailstack/core";
import { minimalConfig } from "../support/fixtures";
import { grammarProblems, PRINTABLE } from "../support/sync-grammar";
import { requireTools } from "../support/tools";

requireTools("python3");

test("the rendered file parses, for derived passwords and an access key id", () => {
  const config = parseConfig({ ...minimalConfig(), sesOutbound: true, sesRegion: "us-east-1" });
  const secrets = { passwordHashes: new Map([["alice@example.com", "{PLAIN}x"]]), dkimPrivateKeyPem: "", tlsPrivateKeyPem: "", resticPassword: "r" };
  const contents = [PRINTABLE, "some+secret+key", "x/y=z"].map(
    (secret) => runtimeFiles(config, { ...secrets, sesSmtpCredentials: { username: "AKIAIOSFODNN7EXAMPLE", password: sesSmtpPassword(secret, "us-east-1") } }).find((f) => f.name === SES_SMTP_CREDENTIALS_FILE)!.content,
  );
  expect(grammarProblems(contents.map((c) => ["sasl-passwords", c]))).toEqual([null, null, null]);
});

test("a second line, a setting, a space in the password or a missing port is refused", () => {
  expect(
    grammarProblems([
      ["sasl-passwords", "[email-smtp.us-east-1.amazonaws.com]:587 AKIA:pw\n[evil.example]:25 AKIA:pw x\n"],
      ["sasl-passwords", "smtp_sasl_password_maps = pcre:/tmp/x\n"],
      ["sasl-passwords", "[email-smtp.us-east-1.amazonaws.com]:587 AKIA:pw word\n"],
      ["sasl-passwords", "[email-smtp.us-east-1.amazonaws.com] AKIA:pw\n"],
    ]),
  ).toEqual([[2, expect.stringContaining("is not [host]:port")], [1, expect.stringContaining("is not [host]:port")], [1, expect.stringContaining("is not [host]:port")], [1, expect.stringContaining("is not [host]:port")]]);
});
