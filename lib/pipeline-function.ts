import * as path from 'path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Where the Lambda sources live: lambda/<name>/handler.ts. */
export const LAMBDA_ROOT = path.join(__dirname, '..', 'lambda');

export interface PipelineFunctionProps {
  /** Folder under lambda/ holding handler.ts. */
  readonly name: string;
  /** One line for the console. */
  readonly description: string;
  /**
   * Function timeout.
   * @default Duration.minutes(2)
   */
  readonly timeout?: Duration;
  /**
   * Memory in MiB.
   * @default 512
   */
  readonly memorySize?: number;
  /** Extra environment variables. @default none */
  readonly environment?: Record<string, string>;
  /** Log retention. @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The NodejsFunction defaults of every pipeline function, set once: bundled locally by esbuild
 * (no Docker), minified with source maps, current Node.js runtime on ARM, structured JSON logs.
 */
export class PipelineFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An own role instead of AWSLambdaBasicExecutionRole: it may write to its own log group only.
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `patch-pipeline ${props.name} function`,
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
    );
    super(scope, id, {
      role,
      entry: path.join(LAMBDA_ROOT, props.name, 'handler.ts'),
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.minutes(2),
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: 'patch-pipeline',
        ...props.environment,
      },
      depsLockFilePath: path.join(LAMBDA_ROOT, '..', 'package-lock.json'),
      projectRoot: path.join(LAMBDA_ROOT, '..'),
      bundling: {
        minify: true,
        sourceMap: true,
        target: 'node20',
        format: OutputFormat.CJS,
        forceDockerBundling: false,
        // The SDK is bundled so the deployed code runs the versions it was tested with.
        externalModules: [],
      },
    });
  }
}
