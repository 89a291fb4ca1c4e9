// The pull-request workflow users copy: what it runs, with which permissions, and that
// secrets only ever reach actions, never a shell.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";

const FILE = join(__dirname, "..", "..", ".github", "workflows", "pulumi-preview.yml");
const text = readFileSync(FILE, "utf8");
const workflow = load(text) as Record<string, unknown>;

type Step = { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, unknown>; name?: string };
type Job = { permissions?: Record<string, string>; steps: Step[]; if?: string; env?: unknown };

const jobs = workflow.jobs as Record<string, Job>;
const stepsUsing = (job: Job, action: string) => job.steps.filter((s) => s.uses?.split("@")[0] === action);
const runs = (job: Job) => job.steps.map((s) => s.run ?? "").join("\n");

/** Every string in a value, with the path it was found at. */
function strings(value: unknown, path: string[] = []): { path: string[]; value: string }[] {
  if (typeof value === "string") return [{ path, value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, [...path, String(i)]));
  if (value && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => strings(v, [...path, k]));
  return [];
}

const previewJob = () => {
  const found = Object.values(jobs).filter((j) => stepsUsing(j, "pulumi/actions").length > 0);
  expect(found).toHaveLength(1);
  return found[0];
};
const planJob = () => {
  const found = Object.values(jobs).filter((j) => /\bnpm run\b.*\bplan\b/.test(runs(j)));
  expect(found).toHaveLength(1);
  return found[0];
};

test("runs on pull requests, never with the base repository's privileges", () => {
  expect(Object.keys(workflow.on)).toEqual(["pull_request"]);
  expect(text).not.toContain("pull_request_target");
});

test("one run per pull request, superseded runs cancelled", () => {
  expect(workflow.concurrency.group).toContain("${{ github.event.pull_request.number }}");
  expect(workflow.concurrency["cancel-in-progress"]).toBe(true);
});

test("least permissions: read by default, write only where the preview needs it", () => {
  expect(workflow.permissions).toEqual({ contents: "read" });
  expect(previewJob().permissions).toEqual({ contents: "read", "pull-requests": "write", "id-token": "write" });
  expect(planJob().permissions).toEqual({ contents: "read" });
});

test("the preview runs pulumi/actions with command preview and a PR comment", () => {
  const job = previewJob();
  const [pulumi] = stepsUsing(job, "pulumi/actions");
  expect(pulumi.uses).toMatch(/^pulumi\/actions@v([6-9]|\d{2,})$/);
  expect(pulumi.with).toMatchObject({ command: "preview", "comment-on-pr": true });
  expect(pulumi.with?.["stack-name"]).toEqual(expect.any(String));
  expect(pulumi.with?.["github-token"]).toBe("${{ secrets.GITHUB_TOKEN }}");
  expect(pulumi.env).toEqual({
    PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    CLOUDFLARE_API_TOKEN: "${{ secrets.CLOUDFLARE_API_TOKEN }}",
  });
});

test("AWS credentials come from OIDC, before the preview, with no stored keys", () => {
  const job = previewJob();
  const aws = stepsUsing(job, "aws-actions/configure-aws-credentials");
  expect(aws).toHaveLength(1);
  expect(aws[0].with?.["role-to-assume"]).toEqual(expect.stringMatching(/\$\{\{ *vars\.\w+ *\}\}/));
  expect(aws[0].with?.["aws-region"]).toBeDefined();
  expect(text).not.toMatch(/aws-access-key-id|aws-secret-access-key|AWS_SECRET_ACCESS_KEY/);
  expect(job.steps.indexOf(aws[0])).toBeLessThan(job.steps.indexOf(stepsUsing(job, "pulumi/actions")[0]));
});

test("pull requests from forks skip the preview but get the credential-free plan", () => {
  expect(previewJob().if).toMatch(/github\.event\.pull_request\.head\.repo\.full_name *== *github\.repository/);
  const plan = planJob();
  expect(plan.if).toBeUndefined();
  expect(JSON.stringify(plan)).not.toMatch(/secrets\.|id-token/);
  expect(stepsUsing(plan, "aws-actions/configure-aws-credentials")).toEqual([]);
  expect(stepsUsing(plan, "pulumi/actions")).toEqual([]);
});

test("both jobs set up Node 22 and install with npm ci before using the program", () => {
  for (const job of [previewJob(), planJob()]) {
    const [node] = stepsUsing(job, "actions/setup-node");
    expect(String(node.with?.["node-version"])).toBe("22");
    const install = job.steps.findIndex((s) => s.run?.trim() === "npm ci");
    expect(install).toBeGreaterThan(job.steps.indexOf(node));
    const use = job.steps.findIndex((s) => s.uses?.startsWith("pulumi/actions") || /npm run\b.*\bplan/.test(s.run ?? ""));
    expect(install).toBeLessThan(use);
  }
});

test("secrets reach only the inputs and environment of actions, never a shell", () => {
  expect(workflow.env).toBeUndefined();
  for (const [name, job] of Object.entries(jobs)) {
    expect([name, job.env]).toEqual([name, undefined]);
    job.steps.forEach((step, i) => {
      for (const found of strings(step).filter((s) => s.value.includes("secrets."))) {
        const where = `${name}.steps[${i}].${found.path.join(".")}`;
        expect([where, typeof step.uses]).toEqual([where, "string"]);
        expect([where, ["with", "env"].includes(found.path[0])]).toEqual([where, true]);
      }
      expect(step.run ?? "").not.toMatch(/secrets\.|set -x|printenv|\benv\b *$/m);
    });
  }
});
