// Placeholder until the PostgreSQL store lands (issue 5).
import { EnvelopeError } from '../budget/errors.js';
import type { LedgerStore } from './store.js';
export const PostgresStore = {
  async connect(_url: string): Promise<LedgerStore> {
    throw new EnvelopeError('invalid_request', 'the postgres:// store is not available in this build');
  },
};
