/**
 * Contracts of the reboot-approval phase (after the document stages, before restore).
 * Groups are applications; each gets one approval request, then reboot and verify.
 */

/** Health checks run by the verify document after a reboot. */
export interface HealthCheck {
  /** Windows services that must be Running. */
  readonly services?: string[];
  /** systemd units that must be active. */
  readonly units?: string[];
  /** A local URL (http://localhost or 127.0.0.1 only) that must answer 2xx/3xx. */
  readonly url?: string;
}

/** Settings of the approval phase, inside RunConfig.approval. */
export interface ApprovalConfig {
  /** 'approval': ask each application's owner; 'skip': no reboot phase (reboots reported as deferred, not requested). */
  readonly mode: 'approval' | 'skip';
  /** Seconds an approval request stays open (the wait task's TimeoutSeconds). */
  readonly timeoutSeconds: number;
  /** Instance tag naming the approver; falls back to the owner tag. */
  readonly approverTagKey: string;
  /** Approver by application name; wins over the tags. */
  readonly approvers: Record<string, string>;
  /** Approver when neither config nor tags name one ('' = such groups are deferred: no approver). */
  readonly defaultApprover: string;
  /** Instance tag with a number: lower reboots first, the next order starts when the previous is back. */
  readonly rebootOrderTagKey: string;
  /** Seconds for a rebooted instance to be back online in SSM. */
  readonly rebootTimeoutSeconds: number;
  /** Health checks by application name (the instance tags HealthServices / HealthUnits / HealthUrl add to them). */
  readonly healthChecks: Record<string, HealthCheck>;
}

/** The approval settings when the deployment gives none. */
export const DEFAULT_APPROVAL: ApprovalConfig = {
  mode: 'approval',
  timeoutSeconds: 86400,
  approverTagKey: 'Approver',
  approvers: {},
  defaultApprover: '',
  rebootOrderTagKey: 'RebootOrder',
  rebootTimeoutSeconds: 1800,
  healthChecks: {},
};

/** Instance tags the verify document reads for per-instance health checks. */
export const HEALTH_TAG_KEYS = { services: 'HealthServices', units: 'HealthUnits', url: 'HealthUrl' } as const;

export type ApprovalStatus = 'requested' | 'waiting' | 'approved' | 'rejected' | 'timed-out' | 'no-approver';

/** runs/<runId>/approvals/<groupId>.json: one application's approval request and decision. */
export interface ApprovalRecord {
  readonly runId: string;
  readonly groupId: string;
  readonly application: string;
  readonly approver: string;
  readonly approverSource: 'config' | 'tag' | 'owner' | 'default' | 'none';
  readonly instanceIds: string[];
  /** Batch ids of the group's chunks (<= 50 instances each): runs/<runId>/batches/<chunkId>.json. */
  readonly chunks: string[];
  /** Opaque id carried by the links; never the task token. */
  approvalId: string;
  expiresAt: string;
  status: ApprovalStatus;
  /** The Step Functions task token: kept here only, never logged, never returned by a task. */
  taskToken?: string;
  requestedAt: string;
  decidedAt?: string;
  decidedBy?: string;
  decidedFrom?: { readonly sourceIp?: string; readonly userAgent?: string; readonly channel: 'link' | 'itsm' | 'timeout' };
  comment?: string;
}

/** What the workflow keeps at $.request for one group (small). */
export interface ApprovalRequestOutput {
  readonly groupId: string;
  readonly application: string;
  readonly approver: string;
  /** False when nobody can approve: the group is deferred at once. */
  readonly notify: boolean;
  readonly subject: string;
  readonly message: string;
  readonly chunks: string[];
  /** Group-level parameters of the verify document (health checks of the application, reboot time floor). */
  readonly verifyParameters: Record<string, string>;
}

/** What SendTaskSuccess carries back to the workflow ($.decision). */
export interface ApprovalDecision {
  readonly decision: 'approved';
  readonly by: string;
  readonly at: string;
  readonly channel: 'link' | 'itsm';
}

/** The error name SendTaskFailure uses for a rejection (the workflow catches it). */
export const APPROVAL_REJECTED = 'ApprovalRejected';

export const approvalKey = (runId: string, groupId: string): string => `runs/${runId}/approvals/${groupId}.json`;
export const approvalsPrefix = (runId: string): string => `runs/${runId}/approvals/`;
/** Group ids sort in order: a000, a001, ...; chunk ids: a000-0, a000-1, ... */
export const groupId = (index: number): string => `a${String(index).padStart(3, '0')}`;
export const chunkId = (group: string, index: number): string => `${group}-${index}`;

/** One item of $.approvalResults: how one group's branch of the approval Map ended. */
export interface ApprovalGroupResult {
  readonly groupId: string;
  /** 'rebooted', 'deferred' or 'no-approver' when the branch ended normally. */
  readonly outcome?: string;
  /** The Catch output when the branch ended with an error. */
  readonly error?: { readonly Error?: string; readonly Cause?: string };
}
