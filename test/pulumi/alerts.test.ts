// alertEmail: status-check alarms e-mailed through SNS, with EC2's own recovery actions.
import { MailStack } from "@mailstack/pulumi";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { type Run, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { one, T } from "./helpers";

const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";
const TOPIC = "aws:sns/topic:Topic";
const SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription";

const ec2Alarms = (run: Run) => run.ofType(ALARM).filter((a) => a.inputs.namespace === "AWS/EC2");

let withAlerts: Run;
let without: Run;
beforeAll(async () => {
  withAlerts = await runProgram(() => {
    new MailStack("mail", stackArgs({ ...fullConfig(), alertEmail: "Pager@Example.NET" }));
  });
  without = await runProgram(() => {
    new MailStack("mail", stackArgs(minimalConfig()));
  });
});

test("the alert address gets an e-mail subscription to the alarms' topic", () => {
  const topic = one(withAlerts, TOPIC);
  const subscription = one(withAlerts, SUBSCRIPTION);
  expect(subscription.inputs).toMatchObject({ protocol: "email", endpoint: "pager@example.net", topic: topic.state.arn });
  expect(typeof topic.state.arn).toBe("string");
});

test("a failed system check recovers the instance, a failed instance check reboots it, both notify", () => {
  const instance = one(withAlerts, T.instance);
  const topicArn = one(withAlerts, TOPIC).state.arn;
  // MailMonitoring's alarms (monitoring.test.ts) notify the same topic; these are the EC2 ones.
  const alarms = Object.fromEntries(ec2Alarms(withAlerts).map((a) => [a.inputs.metricName, a.inputs]));
  expect(Object.keys(alarms).sort()).toEqual(["StatusCheckFailed_Instance", "StatusCheckFailed_System"]);
  for (const alarm of Object.values(alarms)) {
    expect(alarm).toMatchObject({
      namespace: "AWS/EC2",
      dimensions: { InstanceId: instance.id },
      threshold: 1,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      okActions: [topicArn],
    });
    expect(alarm.alarmActions[0]).toBe(topicArn);
    expect(alarm.alarmDescription).toContain("mail.example.com");
  }
  expect(alarms.StatusCheckFailed_System.alarmActions[1]).toBe("arn:aws:automate:us-east-1:ec2:recover");
  expect(alarms.StatusCheckFailed_Instance.alarmActions[1]).toBe("arn:aws:automate:us-east-1:ec2:reboot");
});

test("alarms and topic are children of a MailAlerts component under the MailStack", () => {
  const component = one(withAlerts, "mailstack:aws:MailAlerts");
  const stack = one(withAlerts, T.mailStack);
  expect(component.parent).toBe(stack.urn);
  for (const r of [...withAlerts.ofType(TOPIC), ...withAlerts.ofType(SUBSCRIPTION), ...ec2Alarms(withAlerts)]) expect(r.parent).toBe(component.urn);
});

test("without alertEmail there is no topic, subscription or alarm", () => {
  for (const type of [TOPIC, SUBSCRIPTION, ALARM, "mailstack:aws:MailAlerts"]) expect(without.ofType(type)).toEqual([]);
});
