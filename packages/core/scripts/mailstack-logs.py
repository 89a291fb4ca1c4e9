#!/usr/bin/python3
"""Ship this host's journal to CloudWatch Logs: every mail and auth line, and mailstack's units.

A long-running service. It reads the journal entries of the mail, auth and authpriv syslog
facilities, of the units MAILSTACK_LOG_UNITS names, and those tagged MAILSTACK_FAILURE_TAG,
formats each as `IDENTIFIER[PID]: MESSAGE` (the core's logEventText, which the stack's metric
filters are written against), and puts them in batches into the log group MAILSTACK_LOG_GROUP,
in a stream named after the instance (created when missing).

A batch stays within CloudWatch's limits: 10,000 events, 1,048,576 bytes counting 26 bytes per
event, 24 hours from its first event to its last, in chronological order. Entries older than
14 days, which CloudWatch refuses, are skipped. The journal cursor of a batch's last entry is
saved (MAILSTACK_LOG_CURSOR) only once CloudWatch has accepted the batch, so a restart or an
outage loses nothing: a batch whose acceptance went unrecorded is sent again (at least once).

While CloudWatch cannot be reached or refuses, the shipper keeps the journal where it is and
retries with a growing delay, never exiting over it; it says so once when that starts and once
when it ends. After --alert-after seconds of it, and every day while it lasts, it runs the
alert (MAILSTACK_ALERT_COMMAND), which mails the postmaster and logs the failure tag's line
that the stack counts once the journal reaches CloudWatch again.

Settings come from the environment, as /etc/default/mailstack sets it (the unit's
EnvironmentFile). Arguments override them (tests).
"""

import argparse
import os
import random
import subprocess
import sys
import time
import urllib.request

# CloudWatch Logs' limits on one PutLogEvents call.
MAX_EVENTS = 10000
MAX_BYTES = 1048576
EVENT_OVERHEAD = 26
MAX_SPAN_MS = 24 * 3600 * 1000
MAX_AGE_MS = 14 * 24 * 3600 * 1000
# One event at most (256 KiB with its overhead); a longer message is cut there.
MAX_EVENT_BYTES = 262144 - EVENT_OVERHEAD
# Syslog's mail, auth and authpriv facilities, shipped whole.
FACILITIES = (2, 4, 10)
# How long a batch waits for more entries once it has one.
LINGER_SECONDS = 5.0
BACKOFF_SECONDS = (1.0, 300.0)
ALERT_EVERY_SECONDS = 24 * 3600
RETRIES = {"max_attempts": 3, "mode": "standard"}


def say(message, problem=False):
    print("mailstack-logs: %s" % message, file=sys.stderr if problem else sys.stdout, flush=True)


def event_text(identifier, pid, message):
    """The core's logEventText: `IDENTIFIER[PID]: MESSAGE`, without the brackets when there is no pid."""
    return "%s%s: %s" % (identifier, "" if pid is None or pid == "" else "[%s]" % pid, message)


def field(entry, name):
    value = entry.get(name)
    # A field may occur more than once in an entry; journalctl shows the first.
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


def event_of(entry):
    """A journal entry as a CloudWatch event, named as journalctl names its lines."""
    identifier = field(entry, "SYSLOG_IDENTIFIER") or field(entry, "_COMM") or "unknown"
    pid = field(entry, "_PID") or field(entry, "SYSLOG_PID")
    data = event_text(identifier, pid, field(entry, "MESSAGE") or "").encode("utf-8")
    message = data[:MAX_EVENT_BYTES].decode("utf-8", "ignore")
    return {"timestamp": entry["__REALTIME_TIMESTAMP"] // 1000, "message": message}


def open_journal(args):
    from systemd import journal

    # The timestamp as the journal has it (microseconds), not as a local datetime.
    converters = {"__REALTIME_TIMESTAMP": int}
    reader = journal.Reader(path=args.directory, converters=converters) if args.directory else journal.Reader(converters=converters)
    for facility in FACILITIES:
        reader.add_match(SYSLOG_FACILITY=str(facility))
    reader.add_disjunction()
    for unit in args.units.split():
        reader.add_match(_SYSTEMD_UNIT=unit)
    reader.add_disjunction()
    reader.add_match(SYSLOG_IDENTIFIER=args.failure_tag)
    cursor = load_cursor(args.cursor)
    if cursor is None:
        reader.seek_head()
        return reader, None
    reader.seek_cursor(cursor)
    entry = reader.get_next()
    # The saved entry was shipped; if the journal no longer has it, this is the one after it.
    if entry and not reader.test_cursor(cursor):
        return reader, entry
    return reader, None


def load_cursor(path):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def save_cursor(path, cursor):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path + ".new", "w", encoding="ascii") as handle:
        handle.write(cursor + "\n")
    os.replace(path + ".new", path)


def collect(reader, carried, now_ms, idle_seconds):
    """The next batch: (its events in time order, the cursor of the last entry it covers, the
    entry it left for the next batch). Waits for entries while there are none."""
    events, size, cursor, low, high, deadline = [], 0, None, None, None, None
    entry = carried
    while True:
        if entry is None:
            if events and time.monotonic() >= deadline:
                break
            entry = reader.get_next()
            if not entry:
                entry = None
                # Entries skipped for their age move the cursor too.
                if cursor is not None and not events:
                    break
                reader.wait(max(0.0, deadline - time.monotonic()) if events else idle_seconds)
                continue
        event = event_of(entry)
        stamp = event["timestamp"]
        if now_ms() - stamp > MAX_AGE_MS:
            cursor, entry = entry["__CURSOR"], None
            continue
        need = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD
        if events and (len(events) == MAX_EVENTS or size + need > MAX_BYTES or max(high, stamp) - min(low, stamp) > MAX_SPAN_MS):
            return sorted(events, key=lambda e: e["timestamp"]), cursor, entry
        events.append(event)
        size += need
        low = stamp if low is None else min(low, stamp)
        high = stamp if high is None else max(high, stamp)
        cursor, entry = entry["__CURSOR"], None
        if deadline is None:
            deadline = time.monotonic() + LINGER_SECONDS
    return sorted(events, key=lambda e: e["timestamp"]), cursor, None


def instance_id(endpoint):
    """This instance's id, from IMDSv2: the name of its log stream."""
    token = urllib.request.Request(endpoint.rstrip("/") + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(token, timeout=5) as answer:
        request = urllib.request.Request(endpoint.rstrip("/") + "/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": answer.read().decode("ascii")})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.read().decode("ascii").strip()


class Shipper:
    def __init__(self, args):
        import boto3
        from botocore.config import Config

        self.args = args
        self.client = boto3.client("logs", region_name=args.region, endpoint_url=args.endpoint_url, config=Config(retries=RETRIES))
        self.stream = args.stream
        self.down_since = None
        self.alerted_at = None

    def put(self, events):
        from botocore.exceptions import ClientError

        if self.stream is None:
            self.stream = instance_id(self.args.imds_endpoint)
        batch = {"logGroupName": self.args.group, "logStreamName": self.stream, "logEvents": events}
        try:
            answer = self.client.put_log_events(**batch)
        except ClientError as problem:
            if problem.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            self.create_stream()
            answer = self.client.put_log_events(**batch)
        rejected = answer.get("rejectedLogEventsInfo")
        if rejected:
            say("CloudWatch Logs took the batch but refused some of its events (by index): %s" % rejected, problem=True)

    def create_stream(self):
        from botocore.exceptions import ClientError

        try:
            self.client.create_log_stream(logGroupName=self.args.group, logStreamName=self.stream)
            say("created log stream %s in %s" % (self.stream, self.args.group))
        except ClientError as problem:
            if problem.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise

    def deliver(self, events):
        """Puts a batch, retrying until CloudWatch takes it."""
        from botocore.exceptions import BotoCoreError, ClientError

        delay = BACKOFF_SECONDS[0]
        while True:
            try:
                self.put(events)
            except (BotoCoreError, ClientError, OSError) as problem:
                self.outage(problem)
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, BACKOFF_SECONDS[1])
                continue
            if self.down_since is not None:
                say("shipping again after %d s; nothing of the journal was lost" % (time.monotonic() - self.down_since))
                self.down_since = self.alerted_at = None
            return

    def outage(self, problem):
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            say("cannot ship the journal to CloudWatch Logs: %s; keeping it and retrying, quietly until it works" % problem, problem=True)
        if now - self.down_since < self.args.alert_after:
            return
        if self.alerted_at is not None and now - self.alerted_at < ALERT_EVERY_SECONDS:
            return
        self.alerted_at = now
        say("nothing shipped for %d s: %s" % (now - self.down_since, problem), problem=True)
        result = subprocess.run([self.args.alert_command, self.args.unit], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            say("the alert failed (%d): %s" % (result.returncode, (result.stderr or result.stdout).strip()), problem=True)


def main():
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", default=env.get("MAILSTACK_LOG_GROUP"), help="log group (MAILSTACK_LOG_GROUP)")
    parser.add_argument("--cursor", default=env.get("MAILSTACK_LOG_CURSOR"), help="cursor file (MAILSTACK_LOG_CURSOR)")
    parser.add_argument("--units", default=env.get("MAILSTACK_LOG_UNITS", ""), help="units whose own lines are shipped (MAILSTACK_LOG_UNITS)")
    parser.add_argument("--failure-tag", default=env.get("MAILSTACK_FAILURE_TAG"), help="the alert's journal tag (MAILSTACK_FAILURE_TAG)")
    parser.add_argument("--alert-command", default=env.get("MAILSTACK_ALERT_COMMAND"), help="run with --unit after a long outage (MAILSTACK_ALERT_COMMAND)")
    parser.add_argument("--unit", required=True, help="this shipper's unit, as the alert names it")
    parser.add_argument("--alert-after", type=float, default=3600, help="seconds of outage before the alert")
    parser.add_argument("--region", default=env.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--stream", default=None, help="log stream (default: the instance id, from IMDS)")
    parser.add_argument("--imds-endpoint", default=env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254/"))
    parser.add_argument("--endpoint-url", default=None, help="CloudWatch Logs endpoint (tests)")
    parser.add_argument("--directory", default=None, help="read the journal files in this directory instead of the system's (tests)")
    parser.add_argument("--idle-seconds", type=float, default=60, help="how long to wait for entries at a time")
    args = parser.parse_args()
    for option in ("group", "cursor", "failure_tag", "alert_command"):
        if not getattr(args, option):
            parser.error("--%s is required (or its variable)" % option.replace("_", "-"))

    shipper = Shipper(args)
    reader, carried = open_journal(args)
    say("shipping the journal to %s from %s" % (args.group, "the saved cursor" if load_cursor(args.cursor) else "its start"))
    while True:
        events, cursor, carried = collect(reader, carried, lambda: int(time.time() * 1000), args.idle_seconds)
        if events:
            shipper.deliver(events)
        if cursor is not None:
            save_cursor(args.cursor, cursor)


if __name__ == "__main__":
    sys.exit(main())
