import { storeContract } from './contract/store-contract.js';
import { MemoryStore } from '../src/store/memory.js';

storeContract('memory', { makeStore: async () => new MemoryStore() });
