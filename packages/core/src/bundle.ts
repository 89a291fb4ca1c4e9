import { createHash } from "node:crypto";
import type { MailConfig } from "./config";
import { HOST_CHECKS, hostFiles, type HostParams } from "./host";
import { HOST_OBJECTS, type HostEnv, hostObjectsPrefix, PRODUCTION_ENV } from "./layout";

/** The bundle format mailstack-sync reads; a host refuses a version it does not know. */
export const HOST_BUNDLE_VERSION = 1;

/** Every host file in one document, named by its hash. */
export interface HostBundle {
  /** The JSON document, byte for byte what the host hashes. */
  document: string;
  /** SHA-256 of the document, hex. */
  sha256: string;
  /** Its key in the backup bucket, below the stack's {@link hostObjectsPrefix}: the hash names it. */
  key: string;
}

/**
 * The host bundle: {@link hostFiles} sorted by path, with the checker each names and the units
 * each reloads. JSON rather than tar: it holds no timestamps to fix, and the host reads it with
 * Python's json, with no archive entries (links, devices, `..`) to guard against.
 */
export function hostBundle(config: MailConfig, params: HostParams, env: HostEnv = PRODUCTION_ENV): HostBundle {
  const files = hostFiles(config, params, env).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  files.forEach((f, i) => {
    if (i > 0 && files[i - 1].path === f.path) throw new Error(`two host files at ${f.path}`);
  });
  const document = JSON.stringify({
    version: HOST_BUNDLE_VERSION,
    checks: HOST_CHECKS,
    files: files.map((f) => ({ path: f.path, mode: f.mode, owner: f.owner, reload: f.reload, check: f.check ?? null, content: f.content })),
  });
  const sha256 = createHash("sha256").update(document, "utf8").digest("hex");
  return { document, sha256, key: `${hostObjectsPrefix(params.ssmPath)}/${HOST_OBJECTS.bundles}/${sha256}.json` };
}

/**
 * The pointer parameter's value: where the host fetches the bundle, and the hash it must have.
 * The endpoint is the regional one of the region's partition, as for restic.
 */
export function hostBundlePointer(bundle: HostBundle, bucket: string, region: string, dnsSuffix: string): string {
  return JSON.stringify({ bucket, key: bundle.key, sha256: bundle.sha256, endpoint: `https://s3.${region}.${dnsSuffix}` });
}
