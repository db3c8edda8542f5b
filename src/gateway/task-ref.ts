// Which task a model call belongs to: `x-envelope-task` (and `x-envelope-parent` for a new child), or the
// body's `output_config.task_budget`. Settings to create it on first sight come from the x-envelope-* headers
// or the body's task budget; without them the task must already exist.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { parseHeaderNumber, parseTaskId } from '../budget/spec.js';
import type { TaskRef } from '../pipeline/run-call.js';
import type { CallShape } from '../providers/provider.js';

const one = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * A stable id for a conversation that carries a task_budget but no x-envelope-task: the same tenant and
 * conversation (system prompt and first message) give the same task on every call of the conversation.
 */
function conversationTaskId(tenant: string, conversation: string): string {
  return `conv-${createHash('sha256').update(JSON.stringify([tenant, conversation])).digest('hex').slice(0, 24)}`;
}

export function taskRefOf(
  headers: IncomingHttpHeaders,
  shape: CallShape,
  tenant: string,
): TaskRef | null {
  const header = one(headers, 'x-envelope-task');
  const id = header !== undefined ? parseTaskId(header) : shape.taskBudget && shape.conversation ? conversationTaskId(tenant, shape.conversation) : null;
  if (id === null) return null;
  const budget = one(headers, 'x-envelope-budget');
  const parent = one(headers, 'x-envelope-parent');
  // The header's syntax is checked here, its bounds by the task spec and the rules. A fraction is for USD: a task
  // that says so, or a child that may take its parent's unit (the rules refuse a fraction of a token).
  const unit = one(headers, 'x-envelope-unit');
  const fraction = unit === 'usd' || (unit === undefined && parent !== undefined);
  const total = budget !== undefined ? parseHeaderNumber('x-envelope-budget', budget, fraction) : shape.taskBudget?.total;
  if (total === undefined) return { id, create: null };
  const spec: Record<string, unknown> = { id, tenant, total };
  for (const [field, name] of [
    ['policy', 'x-envelope-policy'],
    ['unit', 'x-envelope-unit'],
    ['meter', 'x-envelope-meter'],
    ['label', 'x-envelope-label'],
  ] as const) {
    const v = one(headers, name);
    if (v !== undefined) spec[field] = v;
  }
  if (parent !== undefined) spec.parent = parent;
  // The task's own pace: tokens and requests per minute (its tenant's limits, the operator's, apply besides).
  const limits: Record<string, number> = {};
  for (const [field, name] of [['tpm', 'x-envelope-tpm'], ['rpm', 'x-envelope-rpm']] as const) {
    const v = one(headers, name);
    if (v !== undefined) limits[field] = parseHeaderNumber(name, v, false);
  }
  if (Object.keys(limits).length) spec.limits = limits;
  return { id, create: spec };
}
