import { App, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PatchPipelineStack } from '../../lib/patch-pipeline-stack';

/** Synthesizes with the AwsSolutions pack; a finding that is not acknowledged makes synth throw. */
function synthWithNag(build: (app: App) => void): () => void {
  const app = new App();
  build(app);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return () => app.synth();
}

describe('cdk-nag AwsSolutions', () => {
  test('leaves no finding that is not acknowledged with a reason', () => {
    expect(synthWithNag((app) => new PatchPipelineStack(app, 'NagStack'))).not.toThrow();
  });

  test('reports a wildcard grant that nobody acknowledged (the check can fail)', () => {
    const build = (app: App): void => {
      const stack = new Stack(app, 'Wild');
      new iam.Role(stack, 'R', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') }).addToPolicy(
        new iam.PolicyStatement({ actions: ['s3:*'], resources: ['*'] }),
      );
    };
    expect(synthWithNag(build)).toThrow(/AwsSolutions-IAM5/);
  });
});
