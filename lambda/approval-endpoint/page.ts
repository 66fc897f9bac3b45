import { createHash } from 'node:crypto';
import { GroupSummary } from '../shared/approval-summary';
import { ApprovalRecord } from '../shared/approvals';

/** Every value that reaches the HTML goes through this. */
export const escapeHtml = (value: unknown): string =>
  String(value ?? '').replace(/[&<>"'`=\/]/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = [
  'body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2433}',
  'h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;margin:1rem 0}',
  'th,td{border-bottom:1px solid #d5d9e0;padding:.4rem .5rem;text-align:left;vertical-align:top;font-size:.92rem}',
  '.status{display:inline-block;padding:.15rem .5rem;border-radius:.3rem;background:#eef1f5}',
  '.forms{display:flex;gap:1.5rem;flex-wrap:wrap}form{border:1px solid #d5d9e0;border-radius:.4rem;padding:1rem;flex:1;min-width:16rem}',
  'label{display:block;margin:.4rem 0 .15rem;font-size:.85rem}input[type=text],textarea{width:100%;box-sizing:border-box}',
  'button{margin-top:.8rem;padding:.5rem 1.2rem;font-size:1rem;border:0;border-radius:.3rem;color:#fff;cursor:pointer}',
  '.approve{background:#1f7a3a}.reject{background:#b42318}.note{color:#5b6475;font-size:.85rem}ul{margin:0;padding-left:1.1rem}',
].join('');

/** The one inline style is allowed by its hash; nothing else may load, frame or post elsewhere. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(STYLE, 'utf-8').digest('base64')}'`,
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export const HTML_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
};

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>${body}</body></html>`;
}

/** A short page for errors and decisions: a title and one sentence. */
export const messagePage = (title: string, message: string): string =>
  layout(title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>`);

/** The fields a decision form posts back, exactly as the link signed them. */
export interface SignedFormFields {
  readonly id: string;
  readonly run: string;
  readonly group: string;
  readonly exp: string;
  readonly sig: string;
}

function statusLine(record: ApprovalRecord): string {
  switch (record.status) {
    case 'waiting':
      return 'waiting for your decision';
    case 'requested':
      return 'not ready yet: the pipeline is still registering this request, reload the page in a few seconds';
    case 'approved':
      return `approved by ${record.decidedBy ?? '?'} at ${record.decidedAt ?? '?'}`;
    case 'rejected':
      return `rejected by ${record.decidedBy ?? '?'} at ${record.decidedAt ?? '?'}`;
    case 'timed-out':
      return 'timed out: the reboot was deferred';
    case 'no-approver':
      return 'no approver: the reboot was deferred';
  }
}

function decisionForm(fields: SignedFormFields, decision: 'approve' | 'reject'): string {
  const hidden = (Object.entries(fields) as [string, string][])
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
    .join('');
  const label = decision === 'approve' ? 'Approve the reboot' : 'Reject (defer the reboot)';
  return `<form method="post">${hidden}<input type="hidden" name="decision" value="${decision}">
<label for="name-${decision}">Your name (optional)</label><input type="text" id="name-${decision}" name="name" maxlength="100" autocomplete="name">
<label for="comment-${decision}">Comment (optional)</label><textarea id="comment-${decision}" name="comment" rows="2" maxlength="1000"></textarea>
<button type="submit" class="${decision}">${escapeHtml(label)}</button></form>`;
}

/** The request page of a GET: what was patched, what is pending, and the two decision forms when they apply. */
export function requestPage(record: ApprovalRecord, summary: GroupSummary, fields: SignedFormFields): string {
  const rows = summary.instances
    .map((i) => {
      const updates = i.updatesInstalled === undefined ? 'unknown' : String(i.updatesInstalled);
      const list = i.installed.length ? `<ul>${i.installed.map((u) => `<li>${escapeHtml(u)}</li>`).join('')}</ul>` : '';
      const more = i.updatesInstalled !== undefined && i.updatesInstalled > i.installed.length ? `<span class="note">and ${escapeHtml(i.updatesInstalled - i.installed.length)} more</span>` : '';
      const reboot = i.rebootPending === undefined ? 'unknown' : i.rebootPending ? 'yes' : 'no';
      return `<tr><td>${escapeHtml(i.name || '(no Name tag)')}</td><td>${escapeHtml(i.instanceId)}</td><td>${escapeHtml(i.platform)}</td><td>${escapeHtml(updates)}${list}${more}</td><td>${escapeHtml(reboot)}</td></tr>`;
    })
    .join('\n');
  const forms =
    record.status === 'waiting'
      ? `<div class="forms">${decisionForm(fields, 'approve')}${decisionForm(fields, 'reject')}</div>
<p class="note">Approving reboots these instances now, in their reboot order, then checks that they are healthy. Rejecting defers the reboot.</p>`
      : '';
  const body = `<h1>Reboot approval: ${escapeHtml(record.application)}</h1>
<p>Run <strong>${escapeHtml(record.runId)}</strong>, group ${escapeHtml(record.groupId)}. Approver: ${escapeHtml(record.approver)}.</p>
<p>Status: <span class="status">${escapeHtml(statusLine(record))}</span></p>
<p>Decide before <strong>${escapeHtml(record.expiresAt)}</strong> (UTC). ${escapeHtml(summary.updatesInstalled)} update(s) installed, ${escapeHtml(summary.pendingReboots)} instance(s) with a reboot pending.</p>
<table><thead><tr><th>Name</th><th>Instance</th><th>Platform</th><th>Updates installed</th><th>Reboot pending</th></tr></thead>
<tbody>${rows}</tbody></table>
${forms}`;
  return layout(`Reboot approval: ${record.application}`, body);
}
