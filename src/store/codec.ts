// Rows as JSON text, for stores that keep a row in one column or one key. One place, so every store agrees.
import { copyTask } from '../budget/states.js';
import type { Conversation, ReservationRow, RunRecord, TaskRow } from '../budget/types.js';

export const encodeRow = (row: ReservationRow | RunRecord): string => JSON.stringify(row);

/**
 * The text of each conversation baseline, and of each list of them, already encoded. A task's baselines (up to 8,
 * most of its row's text) outlive the row versions that carry them: a reservation writes the row with the same list,
 * a settlement with one baseline new. Rows are never changed in place, so a baseline's text is its text for good.
 */
const conversationTexts = new WeakMap<Conversation | Conversation[], string>();

const NO_CONVERSATIONS = '"conversations":[]';

/**
 * JSON.stringify(row), with its baselines' text encoded once. The row is encoded without them and their list is put
 * in place of the empty one: the first `"conversations":[]` in the text is that key's, as every quote inside a
 * string is escaped and no field before it has a key of that name.
 */
export function encodeTask(row: TaskRow): string {
  if (row.conversations.length === 0) return JSON.stringify(row);
  const bare = copyTask(row);
  bare.conversations = [];
  const text = JSON.stringify(bare);
  const at = text.indexOf(NO_CONVERSATIONS);
  return `${text.slice(0, at)}"conversations":${conversationsText(row.conversations)}${text.slice(at + NO_CONVERSATIONS.length)}`;
}

function conversationsText(list: Conversation[]): string {
  let text = conversationTexts.get(list);
  if (text !== undefined) return text;
  text = '[';
  for (const c of list) {
    let one = conversationTexts.get(c);
    if (one === undefined) conversationTexts.set(c, (one = JSON.stringify(c)));
    text += text.length === 1 ? one : `,${one}`;
  }
  text += ']';
  conversationTexts.set(list, text);
  return text;
}

export const decodeTask = (text: string): TaskRow => upgradeTask(JSON.parse(text) as TaskRow);
export const decodeReservation = (text: string): ReservationRow => upgradeReservation(JSON.parse(text) as ReservationRow);

/** A task row as an earlier version wrote it, with the fields added since: such tasks counted every billed token. */
export function upgradeTask(row: TaskRow): TaskRow {
  row.meter ??= 'billed';
  row.conversations ??= [];
  return row;
}

export function upgradeReservation(row: ReservationRow): ReservationRow {
  row.conversation ??= null;
  row.bodyBytes ??= 0;
  row.choices ??= 1;
  return row;
}
export const decodeRun = (text: string): RunRecord => JSON.parse(text) as RunRecord;
