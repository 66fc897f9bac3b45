import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { PatchPipeline, PatchPipelineProps } from './patch-pipeline';

export interface PatchPipelineStackProps extends StackProps {
  /** Props of the PatchPipeline construct. @default PatchPipeline defaults */
  readonly pipeline?: PatchPipelineProps;
}

export class PatchPipelineStack extends Stack {
  public readonly pipeline: PatchPipeline;

  constructor(scope: Construct, id: string, props: PatchPipelineStackProps = {}) {
    super(scope, id, props);
    this.pipeline = new PatchPipeline(this, 'PatchPipeline', props.pipeline);
    new CfnOutput(this, 'StateMachineArn', { value: this.pipeline.stateMachine.stateMachineArn });
    new CfnOutput(this, 'RunBucketName', { value: this.pipeline.bucket.bucketName });
    new CfnOutput(this, 'ApprovalTopicArn', { value: this.pipeline.approvalTopic.topicArn, description: 'Subscribe approvers (e-mail) here' });
    new CfnOutput(this, 'NotificationTopicArn', { value: this.pipeline.notificationTopic.topicArn, description: 'Subscribe to run reports here' });
    new CfnOutput(this, 'ApprovalUrl', { value: this.pipeline.approvalUrl.url });
    new CfnOutput(this, 'InstancePolicyArn', {
      value: this.pipeline.instancePolicy.managedPolicyArn,
      description: 'Attach to the instance roles of the patched instances',
    });
  }
}
