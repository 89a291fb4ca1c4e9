import {
  cloudInit,
  compressedUserData,
  DATA_VOLUME_DEVICE,
  HOST_BUNDLE_PARAMETERS,
  HOST_STATUS_PREFIX,
  hostObjectsPrefix,
  hostBundle,
  hostBundlePointer,
  type MailConfig,
  RESTIC_PREFIX,
  resticRepositoryUrl,
  SES_INBOUND_PREFIX,
  SES_REJECTED_PREFIX,
} from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as ebs from "@pulumi/aws/ebs";
import * as ec2 from "@pulumi/aws/ec2";
import { getCallerIdentityOutput } from "@pulumi/aws/getCallerIdentity";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import { getRegionOutput } from "@pulumi/aws/getRegion";
import * as iam from "@pulumi/aws/iam";
import * as s3 from "@pulumi/aws/s3";
import * as ssm from "@pulumi/aws/ssm";

/** Canonical's AWS account, owner of the official Ubuntu images. */
export const CANONICAL_OWNER_ID = "099720109477";
/** Canonical's accounts in the partitions that are separate from the commercial one. */
const CANONICAL_OWNER_IDS: Record<string, string> = { aws: CANONICAL_OWNER_ID, "aws-cn": "837727238323", "aws-us-gov": "513442679011" };

/** Arguments of {@link MailHost}. */
export interface MailHostArgs {
  /** The validated configuration: instance type and architecture, volume sizes, host files. */
  readonly config: MailConfig;
  /** Subnet of the instance; it must route to an internet gateway. */
  readonly subnetId: pulumi.Input<string>;
  /** The subnet's availability zone, where the data volume is created. */
  readonly availabilityZone: pulumi.Input<string>;
  /** Security groups of the instance (usually MailFirewall's). */
  readonly securityGroupIds: pulumi.Input<readonly pulumi.Input<string>[]>;
  /**
   * SSM path of the stack's runtime files; the instance role may read under it and nothing
   * else. MailHost adds the host bundle's pointer below it, and the role may write its status
   * report below `status/` there.
   */
  readonly parameterPath: string;
  /**
   * AMI to boot. Default: the newest Ubuntu 24.04 image for the architecture, looked up
   * once; later images do not replace a running host (unattended-upgrades patches it). The
   * lookup's result is kept even when the instance is replaced, so set this to move to a new
   * image, and always when changing to an instance type of the other architecture.
   */
  readonly amiId?: pulumi.Input<string>;
  /**
   * ARN of the backup bucket (MailBackup's), which the host's restic repository lives in,
   * below `restic/`, and its bundles and runtime files below `host/<parameterPath>/`. The role
   * may list, read, write and delete objects below `restic/`, read those below
   * `host/<parameterPath>/`, and nothing else in S3;
   * it is explicitly denied deleting versions or changing the bucket's policy, lifecycle,
   * versioning, encryption or Object Lock.
   */
  readonly backupBucketArn: pulumi.Input<string>;
  /**
   * The backup bucket's customer-managed KMS key, if it has one: the role may then generate
   * data keys and decrypt with it, through S3 only. Default none, right for the AWS-managed
   * `aws/s3` key, which S3 lets the account's principals use without a grant.
   */
  readonly backupKmsKeyArn?: pulumi.Input<string>;
  /**
   * ARN of the bucket SES keeps inbound mail in (MailSes's `inboundBucketArn`), with
   * `config.ses.inbound`: the host's importer reads it. The role may list `inbound/`, read and
   * delete objects below it, and add objects below `rejected/` (where the importer copies what
   * the host refused), nothing else there. Required with sesInbound, refused without it.
   */
  readonly sesInboundBucketArn?: pulumi.Input<string>;
  /** Extra tags for the data volume, e.g. MailSnapshots' targetTags. Default none. */
  readonly dataVolumeTags?: Readonly<Record<string, string>>;
  /**
   * Protect the data volume and the Elastic IP from deletion. Default true: mail and the
   * address's sending reputation outlive the instance and a mistaken `pulumi destroy`.
   */
  readonly protect?: boolean;
  /** Tags for every resource that takes them (the instance and volumes also get a `Name`). Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * The mail host: an Ubuntu 24.04 instance, a separate encrypted data volume for mail that
 * outlives it, an Elastic IP, and an instance role that can reach SSM Session Manager, its own
 * parameters and its bundles (and, with sesInbound, SES's inbound mail), nothing more.
 *
 * Every host file (daemon configuration, mailstack's scripts and units) is in the host bundle:
 * one JSON object named by its SHA-256 in the backup bucket, and an SSM parameter that points
 * at it. The user data only installs the packages and a first-boot program that fetches the
 * bundle, so a change to a host file updates the bundle and its pointer, and the running host
 * checks and applies it within minutes, with no replacement. The instance is replaced only
 * when its user data changes (host name, region, parameter path), or its image or type does.
 */
export class MailHost extends pulumi.ComponentResource {
  /** The EC2 instance; replaced when its user data changes. */
  readonly instance: ec2.Instance;
  /** The encrypted gp3 data volume holding mail, the queue and certificates; protected unless `protect` is false. */
  readonly dataVolume: ebs.Volume;
  /** The Elastic IP, the host's public address; protected unless `protect` is false. */
  readonly eip: ec2.Eip;
  /** The instance's IAM role (its policies are inline); attach further policies to it to grant the host more. */
  readonly role: iam.Role;
  /** The instance's id, `i-…`. */
  readonly instanceId: pulumi.Output<string>;
  /** The Elastic IP's address, dotted IPv4: what the A record and the reverse DNS name. */
  readonly publicIp: pulumi.Output<string>;
  /** The #cloud-config document (before compression): no secret is ever part of it. */
  readonly userData: pulumi.Output<string>;
  /** The host bundle's object in the backup bucket, `host/<parameterPath>/bundles/<sha256>.json`. */
  readonly bundle: s3.BucketObjectv2;
  /** SHA-256 of the host bundle this deployment publishes: the one the host reports once it runs it. */
  readonly bundleSha256: pulumi.Output<string>;

  constructor(name: string, args: MailHostArgs, opts?: pulumi.ComponentResourceOptions) {
    const { config } = args;
    const inbound = config.ses?.inbound === true;
    if (inbound !== (args.sesInboundBucketArn !== undefined)) {
      // Before super(): a refused component is not registered at all; the message names it.
      const problem = inbound ? "is required with sesInbound: give MailSes's inboundBucketArn" : "is given, but without sesInbound the host imports nothing; leave it out";
      throw new pulumi.ResourceError(`MailHost ${name}: sesInboundBucketArn: ${problem}`, undefined);
    }
    super("mailstack:aws:MailHost", name, {}, opts);
    const parent = { parent: this };
    const protect = args.protect ?? true;
    const tags = { ...args.tags, Name: config.hostname };

    const region = getRegionOutput({}, parent).region;
    const account = getCallerIdentityOutput({}, parent).accountId;
    const partitionInfo = getPartitionOutput({}, parent);
    const partition = partitionInfo.partition;

    this.role = new iam.Role(
      `${name}-role`,
      {
        description: `mailstack host ${config.hostname}`,
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
        }),
        tags: args.tags,
      },
      parent,
    );
    // AmazonSSMManagedInstanceCore would also grant ssm:GetParameter on every parameter in
    // the account; these are the agent's Session Manager and Run Command actions without it.
    new iam.RolePolicy(
      `${name}-ssm-agent`,
      {
        role: this.role.id,
        policy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "SsmAgent",
              Effect: "Allow",
              Action: [
                "ssm:DescribeAssociation",
                "ssm:DescribeDocument",
                "ssm:GetDeployablePatchSnapshotForInstance",
                "ssm:GetDocument",
                "ssm:GetManifest",
                "ssm:ListAssociations",
                "ssm:ListInstanceAssociations",
                "ssm:PutComplianceItems",
                "ssm:PutConfigurePackageResult",
                "ssm:PutInventory",
                "ssm:UpdateAssociationStatus",
                "ssm:UpdateInstanceAssociationStatus",
                "ssm:UpdateInstanceInformation",
              ],
              Resource: "*",
            },
            {
              Sid: "SessionManager",
              Effect: "Allow",
              Action: ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"],
              Resource: "*",
            },
            {
              Sid: "RunCommand",
              Effect: "Allow",
              Action: ["ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"],
              Resource: "*",
            },
          ],
        }),
      },
      parent,
    );
    new iam.RolePolicy(
      `${name}-parameters`,
      {
        role: this.role.id,
        policy: pulumi.all([partition, region, account]).apply(([partition, region, account]) => {
          const base = `arn:${partition}:ssm:${region}:${account}:parameter${args.parameterPath}`;
          return JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "ReadOwnParameters",
                Effect: "Allow",
                Action: ["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"],
                Resource: [base, `${base}/*`],
              },
              {
                Sid: "ReportOwnStatus",
                Effect: "Allow",
                Action: "ssm:PutParameter",
                Resource: `${base}/${HOST_STATUS_PREFIX}/*`,
              },
            ],
          });
        }),
      },
      parent,
    );
    new iam.RolePolicy(
      `${name}-backup`,
      {
        role: this.role.id,
        policy: pulumi
          .all([args.backupBucketArn, args.backupKmsKeyArn, region, partitionInfo.dnsSuffix])
          .apply(([bucketArn, keyArn, region, dnsSuffix]) => JSON.stringify(backupPolicy(bucketArn, keyArn, `s3.${region}.${dnsSuffix}`, args.parameterPath))),
      },
      parent,
    );
    if (args.sesInboundBucketArn !== undefined) {
      new iam.RolePolicy(
        `${name}-ses-inbound`,
        { role: this.role.id, policy: pulumi.output(args.sesInboundBucketArn).apply((arn) => JSON.stringify(sesInboundPolicy(arn))) },
        parent,
      );
    }
    const profile = new iam.InstanceProfile(`${name}-profile`, { role: this.role.name, tags: args.tags }, parent);

    this.dataVolume = new ebs.Volume(
      `${name}-data`,
      {
        availabilityZone: args.availabilityZone,
        size: config.dataVolumeGiB,
        type: "gp3",
        encrypted: true,
        // Deleting the volume on purpose still leaves a snapshot behind.
        finalSnapshot: true,
        tags: { ...tags, ...args.dataVolumeTags, Name: `${config.hostname} mail data`, "mailstack:role": "data" },
      },
      { parent: this, protect },
    );

    const arch = config.architecture === "arm64" ? "arm64" : "amd64";
    const ami =
      args.amiId ??
      ec2.getAmiOutput(
        {
          owners: [partition.apply((p) => CANONICAL_OWNER_IDS[p] ?? CANONICAL_OWNER_ID)],
          mostRecent: true,
          filters: [
            { name: "name", values: [`ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${arch}-server-*`] },
            { name: "architecture", values: [config.architecture] },
            { name: "virtualization-type", values: ["hvm"] },
            { name: "root-device-type", values: ["ebs"] },
          ],
        },
        parent,
      ).id;

    // Known at preview: the size check runs on every plan, not only once resources exist.
    this.userData = region.apply((region) => cloudInit(config, { region, ssmPath: args.parameterPath }));

    // An S3 bucket ARN is arn:<partition>:s3:::<name>.
    const bucketName = pulumi.output(args.backupBucketArn).apply((arn) => arn.split(":::")[1]);
    const sesInboundBucket = args.sesInboundBucketArn === undefined ? undefined : pulumi.output(args.sesInboundBucketArn).apply((arn) => arn.split(":::")[1]);
    const bundle = pulumi
      .all([region, partitionInfo.dnsSuffix, this.dataVolume.id, bucketName, sesInboundBucket])
      .apply(([region, dnsSuffix, dataVolumeId, bucket, sesInboundBucket]) => {
        const rendered = hostBundle(config, {
          region,
          ssmPath: args.parameterPath,
          dataVolumeId,
          backupRepository: resticRepositoryUrl(bucket, region, dnsSuffix),
          ...(sesInboundBucket === undefined ? {} : { sesInboundBucket }),
        });
        return { ...rendered, pointer: hostBundlePointer(rendered, bucket, region, dnsSuffix) };
      });
    this.bundle = new s3.BucketObjectv2(
      `${name}-bundle`,
      {
        bucket: bucketName,
        // Named by its hash: a new bundle is a new object, so the host never reads a key whose
        // content changed under it, and the one it runs stays until the new one is in place.
        key: bundle.key,
        content: bundle.document,
        contentType: "application/json",
        serverSideEncryption: "aws:kms",
        kmsKeyId: args.backupKmsKeyArn,
        // S3 checks the upload; Object Lock, when the bucket has it, requires a checksum.
        checksumAlgorithm: "SHA256",
        tags: args.tags,
      },
      parent,
    );
    const pointer = new ssm.Parameter(
      `${name}-bundle-pointer`,
      {
        name: `${args.parameterPath}/${HOST_BUNDLE_PARAMETERS.pointer}`,
        type: "String",
        value: bundle.pointer,
        description: `mailstack host bundle of ${config.hostname}: where it is and its SHA-256`,
        tags: args.tags,
      },
      // Written once the object exists, so the host never looks for a bundle that is not there.
      { parent: this, dependsOn: [this.bundle] },
    );
    this.bundleSha256 = bundle.sha256;

    this.instance = new ec2.Instance(
      `${name}-instance`,
      {
        ami,
        instanceType: config.instanceType,
        subnetId: args.subnetId,
        vpcSecurityGroupIds: pulumi.output(args.securityGroupIds).apply((ids) => [...ids]),
        iamInstanceProfile: profile.name,
        userDataBase64: this.userData.apply((doc) => {
          try {
            return compressedUserData(doc).toString("base64");
          } catch (error) {
            throw new pulumi.ResourceError(`MailHost ${name}: ${(error as Error).message}`, this);
          }
        }),
        userDataReplaceOnChange: true,
        metadataOptions: {
          httpEndpoint: "enabled",
          httpTokens: "required",
          // One hop: containers or anything behind a NAT on the host cannot reach the role.
          httpPutResponseHopLimit: 1,
          instanceMetadataTags: "disabled",
        },
        rootBlockDevice: {
          volumeType: "gp3",
          volumeSize: config.rootVolumeGiB,
          encrypted: true,
          deleteOnTermination: true,
          tags: { ...tags, Name: `${config.hostname} root` },
        },
        monitoring: false,
        tags,
      },
      {
        parent: this,
        // Its first boot fetches the bundle the pointer names.
        dependsOn: [pointer],
        // The data volume can be attached to one instance at a time.
        deleteBeforeReplace: true,
        ignoreChanges: args.amiId === undefined ? ["ami"] : [],
      },
    );

    new ec2.VolumeAttachment(
      `${name}-data-attachment`,
      {
        deviceName: DATA_VOLUME_DEVICE,
        volumeId: this.dataVolume.id,
        instanceId: this.instance.id,
        // Stop the instance first so the filesystem is clean when the volume moves.
        stopInstanceBeforeDetaching: true,
      },
      { parent: this, deleteBeforeReplace: true },
    );

    this.eip = new ec2.Eip(`${name}-eip`, { domain: "vpc", tags }, { parent: this, protect });
    new ec2.EipAssociation(`${name}-eip-association`, { allocationId: this.eip.allocationId, instanceId: this.instance.id }, parent);

    this.instanceId = this.instance.id;
    this.publicIp = this.eip.publicIp;
    this.registerOutputs({ instanceId: this.instanceId, publicIp: this.publicIp, dataVolumeId: this.dataVolume.id, bundleSha256: this.bundleSha256 });
  }
}

/** S3 actions a prefix-scoped grant could give that would let the host destroy backup history. */
export const BACKUP_DENIED_ACTIONS = [
  "s3:BypassGovernanceRetention",
  "s3:DeleteBucket",
  "s3:DeleteBucketPolicy",
  "s3:DeleteObjectVersion",
  "s3:PutBucketAcl",
  "s3:PutBucketObjectLockConfiguration",
  "s3:PutBucketOwnershipControls",
  "s3:PutBucketPolicy",
  "s3:PutBucketPublicAccessBlock",
  "s3:PutBucketVersioning",
  "s3:PutEncryptionConfiguration",
  "s3:PutLifecycleConfiguration",
  "s3:PutObjectLegalHold",
  "s3:PutObjectRetention",
  "s3:PutReplicationConfiguration",
];

/**
 * restic's needs under its prefix, reading the stack's host objects (bundles, runtime files),
 * and no more. Deleting an object on the versioned bucket only adds a delete marker (which is
 * how restic prunes); the old version stays until the lifecycle expires it. The Deny holds even if a broader grant is attached to the role later.
 */
function backupPolicy(bucketArn: string, kmsKeyArn: string | undefined, s3Service: string, parameterPath: string) {
  const statements: object[] = [
    {
      Sid: "ListResticPrefix",
      Effect: "Allow",
      Action: "s3:ListBucket",
      Resource: bucketArn,
      Condition: { StringLike: { "s3:prefix": [`${RESTIC_PREFIX}/`, `${RESTIC_PREFIX}/*`] } },
    },
    // restic asks where the bucket is before it opens the repository.
    { Sid: "LocateBucket", Effect: "Allow", Action: "s3:GetBucketLocation", Resource: bucketArn },
    { Sid: "ResticObjects", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], Resource: `${bucketArn}/${RESTIC_PREFIX}/*` },
    { Sid: "ReadHostObjects", Effect: "Allow", Action: "s3:GetObject", Resource: `${bucketArn}/${hostObjectsPrefix(parameterPath)}/*` },
    { Sid: "NeverEraseHistory", Effect: "Deny", Action: BACKUP_DENIED_ACTIONS, Resource: [bucketArn, `${bucketArn}/*`] },
  ];
  if (kmsKeyArn !== undefined) {
    statements.splice(4, 0, {
      Sid: "BucketKey",
      Effect: "Allow",
      Action: ["kms:Decrypt", "kms:GenerateDataKey"],
      Resource: kmsKeyArn,
      Condition: { StringEquals: { "kms:ViaService": s3Service } },
    });
  }
  return { Version: "2012-10-17", Statement: statements };
}

/**
 * What the SES importer needs of the inbound bucket, and no more: find the messages under
 * `inbound/`, read each and delete it once Postfix has it, and copy one the host refused to
 * `rejected/` (a copy reads its source, already allowed, and writes its target). It cannot
 * read `rejected/` back, list it, or write anywhere SES reads.
 */
function sesInboundPolicy(bucketArn: string) {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ListSesInbound", Effect: "Allow", Action: "s3:ListBucket", Resource: bucketArn, Condition: { StringLike: { "s3:prefix": [SES_INBOUND_PREFIX, `${SES_INBOUND_PREFIX}*`] } } },
      { Sid: "ImportSesInbound", Effect: "Allow", Action: ["s3:GetObject", "s3:DeleteObject"], Resource: `${bucketArn}/${SES_INBOUND_PREFIX}*` },
      { Sid: "KeepRefusedSesInbound", Effect: "Allow", Action: "s3:PutObject", Resource: `${bucketArn}/${SES_REJECTED_PREFIX}*` },
    ],
  };
}
