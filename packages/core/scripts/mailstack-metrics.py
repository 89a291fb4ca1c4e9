#!/usr/bin/python3
"""Report this host's health: its metrics to CloudWatch, the same facts to SSM as one document.

Run by a timer every five minutes. Each metric of MAILSTACK_METRICS (key=Name:Unit, the names
the stack's alarms and dashboard watch) is measured here:

  queueActive          messages in Postfix's incoming and active queues (its queue files)
  queueDeferred        messages in its deferred queue
  dataVolumeUsed       percent of the data volume in use, as df counts it
  hoursSinceBackup     hours since the last successful backup started (the backup's status
                       file), or since the host's setup finished while there has been none
  certificateDaysLeft  days until the certificate in use expires
  bundleApplied        1 when the host runs the bundle it last attempted, 0 when it refused
                       or rolled that back (the sync's bundle state)

The values go to CloudWatch with the host name as their one dimension, and, with what they
were measured from and when, to the health parameter in SSM, which `mailstack check` reads.
A value that cannot be measured is null there and not pushed: the gap shows in CloudWatch.

Exit status: 0; 75 when CloudWatch or SSM could not be reached (the next run reports afresh);
1 when AWS refused a request or a metric is unknown to this script.

Settings come from the environment, as /etc/default/mailstack sets it (the unit's
EnvironmentFile). Arguments override the endpoints (tests).
"""

import argparse
import datetime
import json
import os
import ssl
import subprocess
import sys
import time

EX_TEMPFAIL = 75
RETRIES = {"max_attempts": 4, "mode": "standard"}
# Postfix's queues that hold messages, below its queue directory (the others hold logs).
ACTIVE_QUEUES = ("incoming", "active")
DEFERRED_QUEUES = ("deferred",)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def say(message, problem=False):
    print("mailstack-metrics: %s" % message, file=sys.stderr if problem else sys.stdout, flush=True)


def stamp(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(TIME_FORMAT)


def messages(queue_directory, queues):
    """The queue files of Postfix's named queues: one per message, in hashed subdirectories."""
    count = 0
    for queue in queues:
        for _, _, files in os.walk(os.path.join(queue_directory, queue)):
            count += len(files)
    return count


def volume_used(path):
    try:
        stat = os.statvfs(path)
    except OSError as problem:
        say("cannot measure the data volume: %s" % problem, problem=True)
        return None
    # As df: the space root may use counts as in use, not as free for anyone.
    used = stat.f_blocks - stat.f_bfree
    usable = used + stat.f_bavail
    return round(100.0 * used / usable, 1) if usable else None


def setup_finished(marker):
    """When the host's setup finished (its marker), or, before that, when the host booted."""
    try:
        return os.stat(marker).st_mtime
    except FileNotFoundError:
        with open("/proc/uptime", encoding="ascii") as handle:
            return time.time() - float(handle.read().split()[0])


def last_backup(status_file):
    """The start of the last successful backup, from the backup's status file; None if none."""
    try:
        with open(status_file, encoding="utf-8") as handle:
            status = json.load(handle)
    except FileNotFoundError:
        return None
    success = status.get("last_success") or {}
    if not success.get("time"):
        return None
    return datetime.datetime.strptime(success["time"], TIME_FORMAT).replace(tzinfo=datetime.timezone.utc).timestamp()


def certificate_expiry(path):
    """The certificate's notAfter, in seconds since the epoch; None if it cannot be read."""
    result = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", path], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.startswith("notAfter="):
        say("cannot read the certificate %s: %s" % (path, (result.stderr or result.stdout).strip()), problem=True)
        return None
    return ssl.cert_time_to_seconds(result.stdout.strip()[len("notAfter="):])


def bundle_state(path):
    """(the bundle in force, whether the last one attempted is it); (None, None) before any."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return None, None
    current = state.get("current")
    # What the sync last reported to SSM: the first boot installs the pointer's bundle and
    # reports nothing until the sync's next run.
    reported = state.get("reported")
    applied = bool(current) and (reported is None or reported.get("result") == "applied")
    return current, int(applied)


def measure(env, now):
    """Every fact this script knows how to measure: (metric values by key, the context)."""
    started = last_backup(env["MAILSTACK_BACKUP_STATUS"])
    expires = certificate_expiry(env["MAILSTACK_TLS_CERT"])
    bundle, applied = bundle_state(env["MAILSTACK_BUNDLE_STATE"])
    since = started if started is not None else setup_finished(env["MAILSTACK_BOOTSTRAP_DONE"])
    queue = env["MAILSTACK_POSTFIX_QUEUE"]
    values = {
        "queueActive": messages(queue, ACTIVE_QUEUES),
        "queueDeferred": messages(queue, DEFERRED_QUEUES),
        "dataVolumeUsed": volume_used(env["MAILSTACK_DATA_MOUNT"]),
        "hoursSinceBackup": round(max(0.0, now - since) / 3600, 2),
        "certificateDaysLeft": None if expires is None else round((expires - now) / 86400, 2),
        "bundleApplied": applied,
    }
    context = {
        "lastBackup": None if started is None else stamp(started),
        "certificateExpires": None if expires is None else stamp(expires),
        "bundle": bundle,
    }
    return values, context


def metric_names(text):
    """MAILSTACK_METRICS: key=Name:Unit, separated by spaces."""
    metrics = {}
    for item in text.split():
        key, _, rest = item.partition("=")
        name, _, unit = rest.partition(":")
        metrics[key] = (name, unit)
    return metrics


def client(service, region, endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(service, region_name=region, endpoint_url=endpoint, config=Config(retries=RETRIES))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloudwatch-endpoint-url", default=None, help="CloudWatch endpoint (tests)")
    parser.add_argument("--ssm-endpoint-url", default=None, help="SSM endpoint (tests)")
    args = parser.parse_args()
    env = os.environ
    from botocore.exceptions import BotoCoreError, ClientError

    now = time.time()
    values, context = measure(env, now)
    metrics = metric_names(env["MAILSTACK_METRICS"])
    unknown = sorted(set(metrics) - set(values))
    if unknown:
        say("cannot measure %s: this script knows %s" % (", ".join(unknown), ", ".join(sorted(values))), problem=True)
        return 1
    host = env["MAILSTACK_HOSTNAME"]
    region = env.get("AWS_DEFAULT_REGION")
    at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    data = [
        {
            "MetricName": name,
            "Dimensions": [{"Name": env["MAILSTACK_METRIC_DIMENSION"], "Value": host}],
            "Timestamp": at,
            "Value": float(values[key]),
            "Unit": unit,
        }
        for key, (name, unit) in sorted(metrics.items())
        if values[key] is not None
    ]
    health = dict({key: values[key] for key in metrics}, at=stamp(now), host=host, **context)
    statuses = []
    for what, put in (
        ("metrics to CloudWatch", lambda: client("cloudwatch", region, args.cloudwatch_endpoint_url).put_metric_data(Namespace=env["MAILSTACK_METRIC_NAMESPACE"], MetricData=data)),
        (
            "health to SSM",
            lambda: client("ssm", region, args.ssm_endpoint_url).put_parameter(
                Name=env["MAILSTACK_HEALTH_PARAMETER"], Type="String", Overwrite=True, Value=json.dumps(health, sort_keys=True)
            ),
        ),
    ):
        try:
            put()
            statuses.append(0)
        except BotoCoreError as problem:
            say("cannot push the %s: %s; the next run reports afresh" % (what, problem), problem=True)
            statuses.append(EX_TEMPFAIL)
        except ClientError as problem:
            say("AWS refused the %s: %s" % (what, problem), problem=True)
            statuses.append(1)
    # A fault outranks a retry.
    return 1 if 1 in statuses else max(statuses)


if __name__ == "__main__":
    sys.exit(main())
