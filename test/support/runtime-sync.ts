/**
 * A `pulumi up` reaching a running TestStack: the core renders a config's runtime files, they
 * are published as MailParameters publishes them (keys in SSM parameters, the rest in the S3
 * object, the manifest) to fake endpoints, and the real mailstack-sync installs them into the
 * stack's runtime directory, reloads the units its table names (Postfix and Dovecot here) and
 * ends the sessions of the users it changes (doveadm kick). The host bundle is never touched.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HOST_OBJECTS, hostObjectsPrefix, type MailConfigInput, parseConfig, runtimeDelivery, runtimeFiles } from "@mailstack/core";
import { fakeAws, fakeAwsEnv } from "./fake-aws";
import type { TestStack } from "./stack";
import { runAsync, TEST_PARAMS, TEST_RESTIC_PASSWORD, tempRoot, testPasswordHashes } from "./tools";

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-sync.py");
const PREFIX = TEST_PARAMS.ssmPath;
const LOCATION = { bucket: "mailstack-backups-test", key: `${hostObjectsPrefix(PREFIX)}/${HOST_OBJECTS.runtime}`, endpoint: "https://s3.us-east-1.amazonaws.com" };

/** How a sync is expected to go. */
export interface ApplyOptions {
  /** Changes what is published after it is rendered, as a broken or racing `pulumi up` would. */
  edit?: (delivery: ReturnType<typeof runtimeDelivery>) => void;
  /** The sync's exit status, when it is not 0 with nothing on standard error. */
  status?: number;
  /** The LDAP directory's bind password, for a config with `ldap`. */
  ldapBindPassword?: string;
}

/** What one sync did. */
export interface SyncRun {
  /** Its standard output. */
  stdout: string;
  /** Its standard error. */
  stderr: string;
  /** The units it reloaded, in order. */
  reloads: string[];
}

/**
 * Sets up the fake SSM and S3 for the suite (call it at the top level of a test file); `apply`
 * then syncs a config onto the stack `stack()` returns.
 */
export function runtimeSync(stack: () => TestStack): { apply: (input: MailConfigInput, options?: ApplyOptions) => Promise<SyncRun> } {
  const { ssm, s3 } = fakeAws();
  let root: string | undefined;
  afterAll(async () => {
    if (root) await runAsync("rm", ["-rf", root]);
  });
  const apply = async (input: MailConfigInput, options: ApplyOptions = {}): Promise<SyncRun> => {
    const s = stack();
    root ??= tempRoot("ms-sync");
    const config = parseConfig(input);
    const files = runtimeFiles(
      config,
      {
        ...testPasswordHashes(input, config),
        dkimPrivateKeyPem: s.dkimPrivateKey,
        tlsPrivateKeyPem: readFileSync(s.paths.tlsKey, "utf8"),
        resticPassword: TEST_RESTIC_PASSWORD,
        ldapBindPassword: options.ldapBindPassword,
      },
      s.host.env,
    );
    const delivery = runtimeDelivery(files, LOCATION);
    options.edit?.(delivery);
    ssm.publish(new Map([...delivery.parameters.map((p): [string, string] => [`${PREFIX}/${p.name}`, p.value]), [`${PREFIX}/manifest`, delivery.manifest]]));
    s3.objects.clear();
    s3.objects.set(`/${LOCATION.bucket}/${LOCATION.key}`, Buffer.from(delivery.object, "utf8"));

    const log = join(root, "reloads.log");
    const reload = join(root, "reload.sh");
    mkdirSync(root, { recursive: true });
    writeFileSync(log, "");
    // systemctl reload-or-restart, for the daemons of this stack.
    writeFileSync(
      reload,
      `#!/bin/sh
printf '%s\\n' "$1" >> ${log}
case "$1" in
  postfix.service) exec ip netns exec ${s.ns} postfix -c ${s.paths.postfixConfig} reload >/dev/null 2>&1 ;;
  dovecot.service) exec doveadm -c ${s.dovecotConfig} reload ;;
  *) echo "no such unit here: $1" >&2; exit 1 ;;
esac
`,
      { mode: 0o755 },
    );
    const r = await runAsync(
      "/usr/bin/python3",
      [
        "-B",
        SCRIPT,
        "--prefix", PREFIX,
        "--endpoint-url", ssm.endpoint,
        "--region", "us-east-1",
        "--s3-endpoint-url", s3.endpoint,
        "--dest", s.paths.runtime,
        "--state", join(root, "sync-state.json"),
        "--runtime-table", s.paths.runtimeTable,
        "--reload-command", reload,
        "--kick-command", `doveadm -c ${s.dovecotConfig} kick`,
      ],
      { env: fakeAwsEnv(root) },
    );
    if (options.status === undefined) expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    else expect(r.status).toBe(options.status);
    return { stdout: r.stdout, stderr: r.stderr, reloads: readFileSync(log, "utf8").split("\n").filter(Boolean) };
  };
  return { apply };
}
