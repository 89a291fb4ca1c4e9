#!/usr/bin/python3
"""First boot: install the host bundle that this stack's SSM pointer names, then run its bootstrap.

The one program the user data carries, so it stays small: it trusts the bundle only if its
SHA-256 is the pointer's, installs it with the bundle's own mailstack-sync (one program installs
every bundle, first or later), and hands over to the bundle's bootstrap. Any failure exits
non-zero, and its unit runs it again. Settings come from the unit's environment.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

EX_TEMPFAIL = 75


def fetch(region, pointer_name):
    import boto3
    from botocore.config import Config

    ssm = boto3.client("ssm", region_name=region)
    pointer = json.loads(ssm.get_parameter(Name=pointer_name)["Parameter"]["Value"])
    s3 = boto3.client("s3", region_name=region, endpoint_url=pointer["endpoint"], config=Config(s3={"addressing_style": "virtual"}))
    return pointer, s3.get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"].read()


def installed(state_file):
    """Whether a bundle is installed already: a retry after the bootstrap failed goes on from there."""
    try:
        with open(state_file, encoding="utf-8") as handle:
            return bool(json.load(handle).get("current"))
    except FileNotFoundError:
        return False


def main():
    env = os.environ
    bootstrap = env["MAILSTACK_BOOTSTRAP_COMMAND"]
    # Not again: the pointer may by now name a bundle that the bootstrap's sync refused.
    if installed(env["MAILSTACK_BUNDLE_STATE"]):
        os.execv(bootstrap, [bootstrap])
    try:
        pointer, body = fetch(env["AWS_DEFAULT_REGION"], env["MAILSTACK_BUNDLE_POINTER"])
    # No credentials yet, SSM or S3 unreachable, the pointer not written yet: all retried.
    except Exception as problem:
        print("mailstack-first-boot: cannot fetch the host bundle: %s; will retry" % problem, file=sys.stderr)
        return EX_TEMPFAIL
    digest = hashlib.sha256(body).hexdigest()
    if digest != pointer["sha256"]:
        print("mailstack-first-boot: not installing %s: it hashes to %s" % (pointer["key"], digest), file=sys.stderr)
        return 1
    sync = env["MAILSTACK_SYNC_COMMAND"]
    program = next(f["content"] for f in json.loads(body)["files"] if f["path"] == sync)
    with tempfile.TemporaryDirectory() as work:
        bundle, installer = os.path.join(work, "bundle.json"), os.path.join(work, "sync.py")
        with open(bundle, "wb") as handle:
            handle.write(body)
        with open(installer, "w", encoding="utf-8") as handle:
            handle.write(program)
        subprocess.run([sys.executable, installer, "--install-bundle", bundle], check=True)
    os.execv(bootstrap, [bootstrap])


if __name__ == "__main__":
    sys.exit(main())
